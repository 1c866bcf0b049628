"""C3A (circular convolution adaptation) through peft: each adapted layer gets a block-circulant update whose
blocks are circular convolutions, trained as kernels in the frequency domain; full-rank update, few parameters."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check_counts, register
from bench.methods._common import apply_peft_type


@dataclass
class C3aConfig:
    block_size: int = 64  # must divide every adapted layer's in and out width (384, 576, 192 here: 64)
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check_counts(self, "block_size")


apply = apply_peft_type("C3A")
register("c3a", family="reparameterization", config=C3aConfig, merges=True,
         summary="update as a block-circulant matrix (circular convolution kernels), applied by FFT")(apply)
