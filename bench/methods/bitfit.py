"""BitFit (Ben Zaken et al., 2022): only the bias terms train, plus the task head.

Models without bias terms (Llama, Mistral, ...) are refused: BitFit there would be a linear probe, or nothing.
"""

from dataclasses import dataclass

from bench import Unsupported
from bench.methods import register
from bench.methods._common import freeze_all_but, in_modules


@dataclass
class BitFitConfig:
    pass


@register("bitfit", family="selective", config=BitFitConfig, summary="only bias terms (and the task head) train")
def apply(model, cfg: BitFitConfig, arch):
    in_head = in_modules(arch.head)
    if not any(name.endswith(".bias") and not in_head(name) for name, _ in model.named_parameters()):
        raise Unsupported(f"`method` ('bitfit') has nothing to train: {type(model).__name__} has no bias terms")
    return freeze_all_but(model, lambda name: name.endswith(".bias") or in_head(name))
