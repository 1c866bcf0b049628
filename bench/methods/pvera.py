"""PVeRA through peft: VeRA's shared frozen random projections with per-layer scaling vectors, sampled around
a learned mean during training; the mean is used at inference, so it merges."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check_counts, register
from bench.methods._common import apply_peft_type


@dataclass
class PveraConfig:
    r: int = 256  # rank of the shared projections
    d_initial: float = 0.1  # initial value of the d scaling vector
    projection_prng_key: int = 0  # seed of the shared projections
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check_counts(self, "r")


apply = apply_peft_type("PVERA")
register("pvera", family="reparameterization", config=PveraConfig, merges=True,
         summary="VeRA with probabilistic scaling vectors (shared random projections, per-layer vectors)")(apply)
