"""PSOFT (orthogonal fine-tuning in the principal subspace) through peft: A and B come from each weight's SVD and
stay frozen; an r x r orthogonal matrix (and two scaling vectors) train between them. Orthogonal, placed with
reparameterization as OFT is."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check_counts, register
from bench.methods._common import apply_peft_type


@dataclass
class PsoftConfig:
    r: int = 32  # size of the rotation (rank of the principal subspace)
    psoft_alpha: float = 32  # scale alpha / r
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check_counts(self, "r")


apply = apply_peft_type("PSOFT")
register("psoft", family="reparameterization", config=PsoftConfig, merges=True,
         summary="orthogonal r x r rotation between frozen SVD factors of each weight's principal subspace")(apply)
