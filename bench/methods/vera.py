"""VeRA (Kopiczko et al., 2024) through peft: one pair of frozen random projections shared by all layers; each
layer trains only two scaling vectors.

Storage: by default the projections are not saved; they regenerate from `prng_key` on load (a seeded CPU
generator), so the per-task checkpoint holds the scaling vectors and the head only, as the paper counts it.
"""

from dataclasses import dataclass
from typing import Any

from bench.methods import check, check_counts, register
from bench.methods._common import peft_wrap, resolve_targets


@dataclass
class VeraConfig:
    r: int = 256  # rank of the shared random projections (VeRA ranks run far above LoRA's)
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes
    d_initial: float = 0.1  # initial value of the d scaling vector (b starts at zero)
    dropout: float = 0.0
    prng_key: int = 0  # seed of the shared projections
    save_projection: bool = False  # true: store the projections in each checkpoint (safer across torch versions)

    def __post_init__(self):
        check_counts(self, "r")
        check(0 <= self.dropout < 1, "dropout", self.dropout, "must be in [0, 1)")


@register("vera", family="reparameterization", config=VeraConfig, merges=True,
          peft_type="VERA",
          summary="frozen random projections shared by all layers; only per-layer scaling vectors train")
def apply(model, cfg: VeraConfig, arch):
    import warnings

    import peft

    with warnings.catch_warnings():  # peft warns that save_projection=False is a choice; here it is the default
        warnings.simplefilter("ignore", UserWarning)
        peft_config = peft.VeraConfig(
            r=cfg.r, d_initial=cfg.d_initial, vera_dropout=cfg.dropout, projection_prng_key=cfg.prng_key,
            save_projection=cfg.save_projection, target_modules=resolve_targets(cfg.target_modules, arch, model),
        )
    return peft_wrap(model, peft_config, arch)
