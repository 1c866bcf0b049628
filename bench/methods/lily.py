"""Lily (low-rank interconnected adaptation) through peft: each layer has its own down-projection, and a router
mixes a few up-projections shared across layers. An adapter: the routed mixture is computed per input, so peft
cannot merge it."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check_counts, register
from bench.methods._common import apply_peft_type


@dataclass
class LilyConfig:
    r: int = 32  # rank of each adapter (peft suggests 2-4x a LoRA rank)
    num_B: int = 2  # shared up-projections
    stride_A: int = 1  # layers sharing one down-projection
    scaling: float = 1.0  # scale of the update
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check_counts(self, "r", "num_B", "stride_A")


apply = apply_peft_type("LILY")
register("lily", family="adapter", config=LilyConfig, merges=False,
         summary="low-rank adapters whose up-projections are shared across layers and mixed by a router")(apply)
