"""Trainable tokens through peft: only the embedding rows of chosen tokens train (peft stores them as a delta).

Selective, at the token level: a subset of the existing embedding matrix trains. The tokens are those of `text` (by
default the task's topic words), so a user names words, not ids.
"""

from dataclasses import dataclass

from bench import ConfigError
from bench.methods import register
from bench.methods._common import peft_wrap


@dataclass
class TrainableTokensConfig:
    text: str = "business entertainment politics sport tech"  # whose tokens' embedding rows train


@register("trainable-tokens", family="selective", config=TrainableTokensConfig, merges=True,
          peft_type="TRAINABLE_TOKENS", summary="only the embedding rows of chosen tokens train")
def apply(model, cfg: TrainableTokensConfig, arch):
    import peft

    ids = sorted(set(arch.tokenizer(cfg.text, add_special_tokens=False)["input_ids"]))
    if not ids:
        raise ConfigError(f"`method.params.text` ({cfg.text!r}) has no tokens")
    return peft_wrap(model, peft.TrainableTokensConfig(token_indices=ids), arch)
