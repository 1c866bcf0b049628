"""FRoD through peft: per adapted layer a learned scale and a sparse set of trainable values on a fixed random
(seeded) pattern; the update lives in the weight's space and merges."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check, register
from bench.methods._common import apply_peft_type


@dataclass
class FrodConfig:
    sparse_rate: float = 0.01  # fraction of each weight's entries in the trainable sparse pattern
    projection_prng_key: int = 0  # seed of the sparse pattern
    progressbar: bool = False  # peft's per-layer progress bar (off: trial logs stay readable)
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check(0 < self.sparse_rate <= 1, "sparse_rate", self.sparse_rate, "must be in (0, 1]")


apply = apply_peft_type("FROD")
register("frod", family="reparameterization", config=FrodConfig, merges=True,
         summary="a sparse trainable update on a fixed random pattern plus a per-layer scale")(apply)
