"""GraLoRA (granular LoRA) through peft: the weight is split into k x k blocks, each with its own rank-r/k update,
so the same parameters as LoRA r express a rank up to r*k."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check_counts, register
from bench.methods._common import apply_peft_type


@dataclass
class GraloraConfig:
    r: int = 16  # total rank, as LoRA's r (divisible by gralora_k)
    alpha: float = 32  # scale alpha / r
    gralora_k: int = 2  # blocks per side
    hybrid_r: int = 0  # rank of a plain LoRA part beside the blocks
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check_counts(self, "r", "gralora_k")


apply = apply_peft_type("GRALORA")
register("gralora", family="reparameterization", config=GraloraConfig, merges=True,
         summary="LoRA split into k x k blocks, each with its own low-rank pair (same parameter count)")(apply)
