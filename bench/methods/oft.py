"""OFT (Qiu et al., 2023; peft's OFTv2) through peft: a trainable block-diagonal orthogonal rotation of each
adapted layer's input, which keeps the angles between neurons (the "hyperspherical energy")."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check, register
from bench.methods._common import peft_wrap, resolve_targets


@dataclass
class OftConfig:
    block_size: int = 32  # size of each orthogonal block; peft shrinks it to a divisor of a layer's width if needed
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes
    coft: bool = False  # constrained OFT: keep the rotation within eps of the identity
    block_share: bool = False  # one block shared along the diagonal
    module_dropout: float = 0.0

    def __post_init__(self):
        check(isinstance(self.block_size, int) and self.block_size >= 2, "block_size", self.block_size,
              "must be an integer >= 2")


@register("oft", family="reparameterization", config=OftConfig, peft_type="OFT", merges=True,
          summary="trainable block-diagonal orthogonal rotation of each layer's input")
def apply(model, cfg: OftConfig, arch):
    import peft

    peft_config = peft.OFTConfig(
        oft_block_size=cfg.block_size, r=0, coft=cfg.coft, block_share=cfg.block_share,
        module_dropout=cfg.module_dropout, target_modules=resolve_targets(cfg.target_modules, arch, model),
    )
    return peft_wrap(model, peft_config, arch)
