"""LayerNorm tuning (Zhao et al., 2023) through peft: trainable copies of every normalisation layer."""

from dataclasses import dataclass

from bench.methods import register
from bench.methods._common import norm_modules, peft_wrap


@dataclass
class LnTuningConfig:
    pass


@register("ln-tuning", family="selective", config=LnTuningConfig, merges=True, peft_type="LN_TUNING",
          summary="only the LayerNorm/RMSNorm scales and shifts (and the task head) train")
def apply(model, cfg: LnTuningConfig, arch):
    import peft

    return peft_wrap(model, peft.LNTuningConfig(target_modules=norm_modules(model, arch)), arch)
