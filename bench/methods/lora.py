"""LoRA (Hu et al., 2021) through peft: a trainable low-rank update B·A beside frozen linear layers."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check, register
from bench.methods._common import peft_wrap, resolve_targets


@dataclass
class LoraConfig:
    r: int = 8  # rank of the update
    alpha: float = 16  # the update is scaled by alpha / r (alpha / sqrt(r) with rslora)
    dropout: float = 0.05  # dropout on the adapter's input
    target_modules: Any = "qv"  # qv (LoRA paper) | attention | mlp | all-linear | list of layer names or regexes
    use_rslora: bool = False  # rank-stabilised scaling alpha / sqrt(r)
    use_dora: bool = False  # weight-decomposed LoRA: magnitude and direction trained apart
    init: Any = True  # peft init_lora_weights: true (B = 0), gaussian, pissa, olora

    def __post_init__(self):
        check(isinstance(self.r, int) and self.r >= 1, "r", self.r, "must be an integer >= 1")
        check(self.alpha > 0, "alpha", self.alpha, "must be > 0")
        check(0 <= self.dropout < 1, "dropout", self.dropout, "must be in [0, 1)")


def apply_lora(model, cfg: LoraConfig, arch):
    import peft

    peft_config = peft.LoraConfig(
        r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, use_rslora=cfg.use_rslora, use_dora=cfg.use_dora,
        init_lora_weights=cfg.init, target_modules=resolve_targets(cfg.target_modules, arch, model),
    )
    return peft_wrap(model, peft_config, arch)


register("lora", family="reparameterization", config=LoraConfig, merges=True,
         summary="low-rank update B·A beside frozen linear layers")(apply_lora)
