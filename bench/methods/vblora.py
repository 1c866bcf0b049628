"""VB-LoRA (vector bank LoRA) through peft: every LoRA factor is assembled from sub-vectors picked (top-k, by
trained logits) from one bank shared by all layers; the bank and the logits train."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check_counts, register
from bench.methods._common import apply_peft_type


@dataclass
class VbloraConfig:
    r: int = 4  # rank of the LoRA factors
    num_vectors: int = 256  # vectors in the shared bank
    vector_length: int = 64  # length of each; divides every adapted width (384, 576, 192 here: 64)
    topk: int = 2  # bank vectors mixed per sub-vector
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check_counts(self, "r", "num_vectors", "vector_length", "topk")


apply = apply_peft_type("VBLORA")
register("vblora", family="reparameterization", config=VbloraConfig, merges=True,
         summary="LoRA factors composed from a shared bank of vectors by learned top-k logits")(apply)
