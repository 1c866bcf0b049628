"""Cartridges through peft: a trainable key/value cache prepended in every attention layer, stored directly as
parameters (prefix tuning without its MLP), with the first tokens frozen as an attention sink.

A soft prompt. For classification it needs the same `past_key_values` shim as prefix tuning (see prefix_tuning.py).
"""

from dataclasses import dataclass

from bench.methods import check, register
from bench.methods._common import SoftPromptConfig, peft_wrap
from bench.methods.prefix_tuning import accept_past_key_values


@dataclass
class CartridgeConfig(SoftPromptConfig):
    num_frozen_tokens: int = 1  # leading cache entries kept frozen (an attention sink, as the paper does)

    def __post_init__(self):
        super().__post_init__()
        check(0 <= self.num_frozen_tokens < self.num_virtual_tokens, "num_frozen_tokens", self.num_frozen_tokens,
              "must be >= 0 and below num_virtual_tokens")


@register("cartridge", family="soft-prompt", config=CartridgeConfig, peft_type="CARTRIDGE",
          summary="a trainable key/value cache prepended in every attention layer (first tokens frozen)")
def apply(model, cfg: CartridgeConfig, arch):
    import peft

    if arch.task_kind == "classification":
        accept_past_key_values(model)
    config = peft.CartridgeConfig(num_virtual_tokens=cfg.num_virtual_tokens, num_frozen_tokens=cfg.num_frozen_tokens)
    return peft_wrap(model, config, arch)
