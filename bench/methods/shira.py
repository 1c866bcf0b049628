"""SHiRA (sparse high-rank adapters) through peft: a fixed random mask of each adapted weight's entries trains,
r (m + n) of them, as many as a LoRA of rank r. Placed with selective: it tunes a chosen subset of the existing
weights (stored apart, so it also swaps like an adapter)."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check_counts, register
from bench.methods._common import apply_peft_type


@dataclass
class ShiraConfig:
    r: int = 32  # entries per weight = r (m + n), LoRA r's parameter count
    mask_type: str = "random"  # how entries are chosen
    random_seed: int = 0  # seed of the mask
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check_counts(self, "r")


apply = apply_peft_type("SHIRA")
register("shira", family="selective", config=ShiraConfig, merges=True,
         summary="a sparse, fixed set of each weight's entries trains (as many as LoRA r would)")(apply)
