"""Full fine-tuning: every parameter trains. The baseline every method is measured against."""

from dataclasses import dataclass

from bench.methods import register
from bench.methods._common import freeze_all_but


@dataclass
class FullConfig:
    pass


@register("full", family="full", config=FullConfig, summary="every weight trains; one full model copy per task")
def apply(model, cfg: FullConfig, arch):
    return freeze_all_but(model, lambda name: True)
