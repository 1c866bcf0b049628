"""BitFit (Ben Zaken et al., 2022): only the bias terms train, plus the task head."""

from dataclasses import dataclass

from bench.methods import register
from bench.methods._common import freeze_all_but, in_modules


@dataclass
class BitFitConfig:
    pass


@register("bitfit", family="selective", config=BitFitConfig, summary="only bias terms (and the task head) train")
def apply(model, cfg: BitFitConfig, arch):
    in_head = in_modules(arch.head)
    return freeze_all_but(model, lambda name: name.endswith(".bias") or in_head(name))
