"""LoKr (Edalati et al., 2022, KronA; LyCORIS) through peft: the update is a Kronecker product W1 ⊗ (B·A)."""

from dataclasses import dataclass

from bench.methods import register
from bench.methods._common import LowRankConfig, peft_wrap, resolve_targets


@dataclass
class LokrConfig(LowRankConfig):  # r (of the low-rank Kronecker factor), alpha 8 (peft's defaults), target_modules
    decompose_factor: int = -1  # split of each dimension into the two factors; -1: as square as possible
    decompose_both: bool = False  # low-rank decompose the small factor too
    rank_dropout: float = 0.0
    module_dropout: float = 0.0


@register("lokr", family="reparameterization", config=LokrConfig, peft_type="LOKR", merges=True,
          summary="update as a Kronecker product of a small matrix and a low-rank one")
def apply(model, cfg: LokrConfig, arch):
    import peft

    peft_config = peft.LoKrConfig(
        r=cfg.r, alpha=cfg.alpha, decompose_factor=cfg.decompose_factor, decompose_both=cfg.decompose_both,
        rank_dropout=cfg.rank_dropout, module_dropout=cfg.module_dropout,
        target_modules=resolve_targets(cfg.target_modules, arch, model),
    )
    return peft_wrap(model, peft_config, arch)
