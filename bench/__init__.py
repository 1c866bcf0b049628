"""peft-bench: benchmark and trade-off study harness for parameter-efficient fine-tuning.

The two errors every part raises live here, below everything, so that any module can raise them without
importing the config machinery (bench.config re-exports them).
"""

from __future__ import annotations

import difflib

__version__ = "0.1.0"


class ConfigError(ValueError):
    """Bad input: the message names the config key and the value."""


class Unsupported(ConfigError):
    """A valid configuration this combination cannot run (e.g. QLoRA without a GPU): recorded as `skipped`."""


def closest(name: str, choices) -> str:
    """'; closest: a, b' for an unknown name, or '; valid: ...' when nothing is close."""
    matches = difflib.get_close_matches(name, sorted(choices), n=3, cutoff=0.5)
    return f"; closest: {', '.join(matches)}" if matches else f"; valid: {', '.join(sorted(choices))}"
