"""AdaMSS (adaptive multi-subspaces) through peft: the weight's top singular vectors are clustered into
subspaces and a low-rank update trains inside each; the rest of the weight stays frozen."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check_counts, register
from bench.methods._common import apply_peft_type


@dataclass
class AdamssConfig:
    r: int = 32  # singular vectors kept for the decomposition (R in the paper)
    num_subspaces: int = 4  # clusters of those vectors, each with its own update
    subspace_rank: int = 1  # rank of the update inside each subspace
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check_counts(self, "r", "num_subspaces", "subspace_rank")


apply = apply_peft_type("ADAMSS")
register("adamss", family="reparameterization", config=AdamssConfig, merges=True,
         summary="low-rank updates inside clustered subspaces of each weight's SVD")(apply)
