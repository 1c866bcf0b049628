"""HRA (Householder reflection adaptation, Yuan et al., 2024) through peft: each adapted weight is multiplied by a
product of r Householder reflections; an orthogonal method, placed with reparameterization as OFT is (the update
rewrites the frozen weight and merges into it)."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check_counts, register
from bench.methods._common import apply_peft_type


@dataclass
class HraConfig:
    r: int = 8  # number of reflections per layer
    apply_GS: bool = False  # Gram-Schmidt orthogonalise the reflection vectors
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check_counts(self, "r")


apply = apply_peft_type("HRA")
register("hra", family="reparameterization", config=HraConfig, merges=True,
         summary="orthogonal update as a chain of r trainable Householder reflections")(apply)
