"""Super-Tuning through peft: a sparse support of each adapted weight's entries, selected by magnitude, trains.
Selective: it tunes a subset of the existing weights (stored as values on that support)."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check, register
from bench.methods._common import apply_peft_type


@dataclass
class SupertuningConfig:
    sparsity: float = 0.99  # share of each weight's entries left frozen
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check(0 < self.sparsity < 1, "sparsity", self.sparsity, "must be in (0, 1)")


apply = apply_peft_type("SUPERTUNING")
register("supertuning", family="selective", config=SupertuningConfig, merges=True,
         summary="the largest-magnitude entries of each weight train (a sparse support), the rest frozen")(apply)
