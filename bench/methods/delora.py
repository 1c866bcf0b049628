"""DeLoRA (decoupled low-rank adaptation) through peft: the low-rank update is normalised and scaled by a learned
lambda, bounding its Frobenius norm (the angle and the strength of the update train apart)."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check_counts, register
from bench.methods._common import apply_peft_type


@dataclass
class DeloraConfig:
    r: int = 8  # rank of the update
    delora_lambda: int = 15  # initial bound on the update's norm
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check_counts(self, "r")


apply = apply_peft_type("DELORA")
register("delora", family="reparameterization", config=DeloraConfig, merges=True,
         summary="LoRA with normalised factors and a learned bound on the update's norm")(apply)
