"""FourierFT (Gao et al., 2024) through peft: n random frequencies per adapted layer train; the weight update is the
inverse discrete Fourier transform of that sparse spectrum, times `scaling`."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check_counts, register
from bench.methods._common import apply_peft_type


@dataclass
class FourierftConfig:
    n_frequency: int = 1000  # trainable spectral coefficients per layer (the paper's n)
    scaling: float = 150.0  # scale of the update (peft's default for classification)
    random_loc_seed: int = 777  # seed of the frequencies' positions
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check_counts(self, "n_frequency")


apply = apply_peft_type("FOURIERFT")
register("fourierft", family="reparameterization", config=FourierftConfig, merges=True,
         summary="a few trainable spectral coefficients per layer; the update is their inverse 2-D DFT")(apply)
