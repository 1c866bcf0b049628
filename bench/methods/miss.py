"""MiSS (matrix shard sharing, formerly Bone) through peft: a small trainable block is shared across the shards of
each weight and expanded into its update; merges."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check_counts, register
from bench.methods._common import apply_peft_type


@dataclass
class MissConfig:
    r: int = 64  # shard width along in_features (even, divides it)
    mini_r: int = 1  # shard width along out_features
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check_counts(self, "r", "mini_r")


apply = apply_peft_type("MISS")
register("miss", family="reparameterization", config=MissConfig, merges=True,
         summary="one trainable block shared along each weight's rows (a shard, not a low-rank pair)")(apply)
