"""BOFT (Liu et al., 2024) through peft: OFT whose dense orthogonal rotation is a product of sparse butterfly
factors, each block-diagonal after a fixed permutation.

peft only keeps more than one butterfly factor where it can build its CUDA kernel (ninja + nvcc); elsewhere (CPU)
it falls back to a single factor, i.e. block-diagonal OFT with this block size, and says so in a warning.
"""

from dataclasses import dataclass
from typing import Any

from bench import ConfigError
from bench.methods import check, check_counts, register
from bench.methods._common import linear_shape, peft_wrap, resolve_targets


@dataclass
class BoftConfig:
    block_size: int = 8  # size of each orthogonal block
    butterfly_factors: int = 2  # number of butterfly factors (1 = plain block-diagonal OFT)
    target_modules: Any = "qv"  # qv | attention | mlp | all-linear | list of layer names or regexes
    dropout: float = 0.0  # multiplicative dropout on the blocks

    def __post_init__(self):
        check(isinstance(self.block_size, int) and self.block_size >= 2 and self.block_size % 2 == 0,
              "block_size", self.block_size, "must be an even integer >= 2")
        check_counts(self, "butterfly_factors")


def check_widths(cfg: BoftConfig, widths: set[int]) -> None:
    """peft's constraints, up front with the key named: each input width splits into butterfly-sized groups."""
    group = cfg.block_size * 2 ** (cfg.butterfly_factors - 1)
    bad = sorted(w for w in widths if w % group or (cfg.butterfly_factors > 1 and (w // cfg.block_size) % 2))
    if bad:
        raise ConfigError(f"`method.params.block_size` ({cfg.block_size}) with "
                          f"butterfly_factors={cfg.butterfly_factors} "
                          f"needs input widths divisible by {group}; this model's target layers have {bad}")


@register("boft", family="reparameterization", config=BoftConfig, peft_type="BOFT", merges=True,
          summary="orthogonal rotation of each layer's input built from sparse butterfly factors")
def apply(model, cfg: BoftConfig, arch):
    import peft

    targets = resolve_targets(cfg.target_modules, arch, model)
    check_widths(cfg, {linear_shape(model, name)[0] for name in targets})
    peft_config = peft.BOFTConfig(boft_block_size=cfg.block_size, boft_n_butterfly_factor=cfg.butterfly_factors,
                                  boft_dropout=cfg.dropout, target_modules=targets)
    return peft_wrap(model, peft_config, arch)
