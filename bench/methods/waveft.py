"""WaveFT (wavelet fine-tuning) through peft: n trainable coefficients per adapted layer in the wavelet domain; the
update is their inverse discrete wavelet transform."""

from dataclasses import dataclass
from typing import Any

from bench.methods import check_counts, register
from bench.methods._common import apply_peft_type


@dataclass
class WaveftConfig:
    n_frequency: int = 2592  # trainable wavelet coefficients per layer
    scaling: float = 25.0  # scale of the update
    wavelet_family: str = "db1"  # wavelet (db1 is Haar)
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check_counts(self, "n_frequency")


apply = apply_peft_type("WAVEFT")
register("waveft", family="reparameterization", config=WaveftConfig, merges=True,
         summary="a few trainable wavelet coefficients per layer; the update is their inverse wavelet transform")(apply)
