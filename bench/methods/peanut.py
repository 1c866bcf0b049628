"""PEANuT through peft: the weight update is a small trainable network applied to the frozen weight (a nonlinear
function of W, not a free low-rank pair); it depends on W only, so it merges."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check_counts, register
from bench.methods._common import apply_peft_type


@dataclass
class PeanutConfig:
    r: int = 32  # hidden width of the network
    depth: int = 0  # hidden layers between its input and output projections
    act_fn: str = "relu"  # activation between them
    scaling: float = 1.0  # scale of the update
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check_counts(self, "r")


apply = apply_peft_type("PEANUT")
register("peanut", family="reparameterization", config=PeanutConfig, merges=True,
         summary="update computed from the frozen weight itself by a small trainable network")(apply)
