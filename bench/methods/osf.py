"""OSF (orthogonal subspace fine-tuning) through peft: each adapted weight is split by SVD; its top `effective_rank`
directions stay frozen and the rest train. Placed with reparameterization: it re-expresses the weight itself
(merges), though the trainable share is far larger than LoRA's (half of each weight's rank by default)."""

from dataclasses import dataclass
from typing import Any

from bench.methods import register
from bench.methods._common import apply_peft_type


@dataclass
class OsfConfig:
    effective_rank: Any = None  # frozen top singular directions; null: half of each weight's rank
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes


apply = apply_peft_type("OSF")
register("osf", family="reparameterization", config=OsfConfig, merges=True,
         summary="trains the weight's low singular subspace; the top subspace stays frozen")(apply)
