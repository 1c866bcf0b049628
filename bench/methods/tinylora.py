"""TinyLoRA through peft: each weight's rank-r SVD is frozen and a vector of u values, projected through fixed
random tensors, steers it; a few dozen parameters per layer."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check_counts, register
from bench.methods._common import apply_peft_type


@dataclass
class TinyloraConfig:
    r: int = 2  # SVD rank (the paper recommends 2)
    u: int = 64  # trainable values per layer
    projection_seed: int = 42  # seed of the random projections
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check_counts(self, "r", "u")


apply = apply_peft_type("TINYLORA")
register("tinylora", family="reparameterization", config=TinyloraConfig, merges=True,
         summary="a tiny trainable vector projected through frozen random tensors onto each weight's top SVD")(apply)
