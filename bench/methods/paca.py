"""PaCA (partial connection adaptation, Woo et al., 2025) through peft: r randomly chosen input columns of each
adapted weight train in place, r·m entries (LoRA r's B count) and no added matrices. Placed with selective: it tunes
a chosen subset of the existing weights (stored apart, so it also swaps like an adapter). Backpropagation keeps only
those r input channels of each layer's input, the memory the method is for."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check_counts, register
from bench.methods._common import apply_peft_type


@dataclass
class PacaConfig:
    r: int = 8  # input columns trained per weight
    paca_alpha: int = 8  # the columns' update is scaled by paca_alpha / r
    random_seed: int = 0  # seed of the chosen columns
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check_counts(self, "r")


apply = apply_peft_type("PACA")
register("paca", family="selective", config=PacaConfig, merges=True,
         summary="r input columns of each weight train in place (LoRA r's count of B entries)")(apply)
