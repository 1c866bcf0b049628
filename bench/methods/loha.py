"""LoHa (Hyeon-Woo et al., 2022, FedPara; LyCORIS) through peft: the update is the Hadamard product of two low-rank
products, (B1·A1) ⊙ (B2·A2), reaching rank r² with the parameters of rank 2r."""

from dataclasses import dataclass

from bench.methods import register
from bench.methods._common import LowRankConfig, peft_wrap, resolve_targets


@dataclass
class LohaConfig(LowRankConfig):  # r, alpha 8 (peft's defaults: scale 1), target_modules
    rank_dropout: float = 0.0
    module_dropout: float = 0.0


@register("loha", family="reparameterization", config=LohaConfig, peft_type="LOHA", merges=True,
          summary="update as the Hadamard product of two low-rank products (higher rank per parameter)")
def apply(model, cfg: LohaConfig, arch):
    import peft

    peft_config = peft.LoHaConfig(r=cfg.r, alpha=cfg.alpha, rank_dropout=cfg.rank_dropout,
                                  module_dropout=cfg.module_dropout,
                                  target_modules=resolve_targets(cfg.target_modules, arch, model))
    return peft_wrap(model, peft_config, arch)
