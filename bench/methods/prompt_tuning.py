"""Prompt tuning (Lester et al., 2021) through peft: trainable virtual token embeddings before the input."""

from dataclasses import dataclass
from typing import ClassVar

from bench.methods import register
from bench.methods._common import SoftPromptConfig, peft_wrap


@dataclass
class PromptTuningConfig(SoftPromptConfig):
    CHOICES: ClassVar[dict[str, tuple]] = {"init": ("random", "text")}
    init: str = "random"  # random | text (embeddings of `init_text`'s tokens, Lester et al.'s better start)
    init_text: str = "Classify the topic of this news article:"


@register("prompt-tuning", family="soft-prompt", config=PromptTuningConfig,
          peft_type="PROMPT_TUNING",
          summary="trainable virtual tokens prepended to the input embeddings")
def apply(model, cfg: PromptTuningConfig, arch):
    import peft

    text_init = dict(
        prompt_tuning_init="TEXT", prompt_tuning_init_text=cfg.init_text,
        tokenizer_name_or_path=arch.tokenizer.name_or_path,
    ) if cfg.init == "text" else dict(prompt_tuning_init="RANDOM")
    return peft_wrap(model, peft.PromptTuningConfig(num_virtual_tokens=cfg.num_virtual_tokens, **text_init), arch)
