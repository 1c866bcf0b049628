"""LoHa (Hyeon-Woo et al., 2022, FedPara; LyCORIS) through peft: the update is the Hadamard product of two low-rank
products, (B1·A1) ⊙ (B2·A2), reaching rank r² with the parameters of rank 2r."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check, register
from bench.methods._common import peft_wrap, resolve_targets


@dataclass
class LohaConfig:
    r: int = 8  # rank of each of the two factors
    alpha: float = 8  # the update is scaled by alpha / r
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes
    rank_dropout: float = 0.0
    module_dropout: float = 0.0

    def __post_init__(self):
        check(isinstance(self.r, int) and self.r >= 1, "r", self.r, "must be an integer >= 1")
        check(self.alpha > 0, "alpha", self.alpha, "must be > 0")


@register("loha", family="reparameterization", config=LohaConfig, merges=True,
          summary="update as the Hadamard product of two low-rank products (higher rank per parameter)")
def apply(model, cfg: LohaConfig, arch):
    import peft

    peft_config = peft.LoHaConfig(r=cfg.r, alpha=cfg.alpha, rank_dropout=cfg.rank_dropout, module_dropout=cfg.module_dropout,
                                  target_modules=resolve_targets(cfg.target_modules, arch, model))
    return peft_wrap(model, peft_config, arch)
