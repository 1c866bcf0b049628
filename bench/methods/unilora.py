"""Uni-LoRA through peft: all LoRA factors of all layers are a fixed random projection of one trainable vector of
`theta_d_length` values ("one vector is all you need")."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check_counts, register
from bench.methods._common import apply_peft_type


@dataclass
class UniloraConfig:
    r: int = 4  # rank of the LoRA factors
    theta_d_length: int = 256  # length of the one trainable vector
    proj_seed: int = 42  # seed of the projection
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check_counts(self, "r", "theta_d_length")


apply = apply_peft_type("UNILORA")
register("unilora", family="reparameterization", config=UniloraConfig, merges=True,
         summary="every layer's LoRA factors drawn from one shared trainable vector by fixed projections")(apply)
