"""DEFT (decompositional efficient fine-tuning) through peft: W' = (I - P_proj) W + Q_P R, with a learned rank-r
projection direction P and injection R; a low-rank reparameterisation of each adapted weight."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check_counts, register
from bench.methods._common import apply_peft_type


@dataclass
class DeftConfig:
    r: int = 8  # rank of the projection direction and injection
    decomposition_method: str = "relu"  # how the projector is derived from P (peft: relu, qr, ...)
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check_counts(self, "r")


apply = apply_peft_type("DEFT")
register("deft", family="reparameterization", config=DeftConfig, merges=True,
         summary="a low-rank direction projected out of each weight and a learned injection put back")(apply)
