"""HiRA (Hadamard high-rank adaptation) through peft: dW = W0 * (B A), a Hadamard product with the frozen weight,
so a rank-r pair gives an update of up to full rank."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check_counts, register
from bench.methods._common import apply_peft_type


@dataclass
class HiraConfig:
    r: int = 32  # rank of the low-rank factor B A
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check_counts(self, "r")


apply = apply_peft_type("HIRA")
register("hira", family="reparameterization", config=HiraConfig, merges=True,
         summary="high-rank update: the Hadamard product of the frozen weight and a low-rank product")(apply)
