"""peft-bench: benchmark and trade-off study harness for parameter-efficient fine-tuning."""

__version__ = "0.1.0"
