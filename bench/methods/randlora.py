"""RandLoRA through peft: the update is a sum of frozen random low-rank bases, each scaled by trained diagonal
matrices, so few parameters give a full-rank update."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check_counts, register
from bench.methods._common import apply_peft_type


@dataclass
class RandloraConfig:
    r: int = 32  # rank of each random basis
    randlora_alpha: float = 640  # scale of the update (peft's default, 20 x r)
    projection_prng_key: int = 0  # seed of the random bases
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check_counts(self, "r")


apply = apply_peft_type("RANDLORA")
register("randlora", family="reparameterization", config=RandloraConfig, merges=True,
         summary="full-rank update from many frozen random low-rank bases; only their scales train")(apply)
