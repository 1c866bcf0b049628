"""LoRA (Hu et al., 2021) through peft: a trainable low-rank update B·A beside frozen linear layers."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check, register
from bench.methods._common import LowRankConfig, peft_wrap, resolve_targets


@dataclass
class LoraConfig(LowRankConfig):
    alpha: float = 16  # the update is scaled by alpha / r (alpha / sqrt(r) with rslora)
    dropout: float = 0.05  # dropout on the adapter's input
    use_rslora: bool = False  # rank-stabilised scaling alpha / sqrt(r)
    use_dora: bool = False  # weight-decomposed LoRA: magnitude and direction trained apart
    init: Any = True  # peft init_lora_weights: true (B = 0), gaussian, pissa, olora

    def __post_init__(self):
        super().__post_init__()
        check(0 <= self.dropout < 1, "dropout", self.dropout, "must be in [0, 1)")


def apply_lora(model, cfg: LoraConfig, arch):
    import peft

    peft_config = peft.LoraConfig(
        r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, use_rslora=cfg.use_rslora, use_dora=cfg.use_dora,
        init_lora_weights=cfg.init, target_modules=resolve_targets(cfg.target_modules, arch, model),
    )
    return peft_wrap(model, peft_config, arch)


register("lora", family="reparameterization", config=LoraConfig, merges=True, peft_type="LORA", mixed_batches=True,
         summary="low-rank update B·A beside frozen linear layers")(apply_lora)
