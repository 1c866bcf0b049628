"""LLaMA-Adapter (Zhang et al., 2023) through peft's adaption prompt: learned prompts in the top layers' attention,
mixed in through a gate that starts at zero (so training starts from the base model).

A soft prompt, as prefix tuning is, with a zero-init gate. peft implements it for Llama, Mistral and GPT-2 attention
only; other architectures are refused (skipped).
"""

from dataclasses import dataclass

from bench import ConfigError, Unsupported
from bench.methods import check_counts, register
from bench.methods._common import peft_wrap


@dataclass
class AdaptionPromptConfig:
    adapter_len: int = 10  # prompt tokens per adapted layer (the paper's 10)
    adapter_layers: int | None = None  # top layers that get a prompt; null: all of them

    def __post_init__(self):
        check_counts(self, "adapter_len")
        if self.adapter_layers is not None:
            check_counts(self, "adapter_layers")


@register("adaption-prompt", family="soft-prompt", config=AdaptionPromptConfig, peft_type="ADAPTION_PROMPT",
          summary="learned prompts in the top layers' attention behind zero-initialised gates (LLaMA-Adapter)")
def apply(model, cfg: AdaptionPromptConfig, arch):
    import peft
    from peft.tuners.adaption_prompt.config import TRANSFORMERS_MODEL_CONFIG

    model_type = model.config.model_type
    if model_type not in TRANSFORMERS_MODEL_CONFIG:
        raise Unsupported(f"`method` ('adaption-prompt'): peft implements it for {', '.join(TRANSFORMERS_MODEL_CONFIG)}"
                          f" attention, not {model_type}")
    layers = model.config.num_hidden_layers
    if (cfg.adapter_layers or 0) > layers:
        raise ConfigError(f"`method.params.adapter_layers` ({cfg.adapter_layers}) must be <= the model's {layers} "
                          "layers")
    config = peft.AdaptionPromptConfig(adapter_len=cfg.adapter_len, adapter_layers=cfg.adapter_layers or layers)
    return peft_wrap(model, config, arch)
