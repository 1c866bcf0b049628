"""GLoRA (generalised LoRA) through peft: W_eff = W0 + W0*A + B and b_eff = b0 + b0*D + E + W0 C, each of A..E a
low-rank factor, a vector or a constant; merges, and peft serves mixed batches with it."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check_counts, register
from bench.methods._common import apply_peft_type


@dataclass
class GloraConfig:
    r: int = 8  # rank of the low-rank terms
    config_A_B: str = "lora"  # form of A and B: lora | vector | constant | none
    config_C: str = "lora"  # form of C: lora | vector | none
    config_D_E: str = "constant"  # form of D and E: constant | none
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check_counts(self, "r")


apply = apply_peft_type("GLORA")
register("glora", family="reparameterization", config=GloraConfig, merges=True, mixed_batches=True,
         summary="generalised LoRA: low-rank or vector scales and shifts of weight and bias")(apply)
