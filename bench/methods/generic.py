"""Any peft type by name, before it has its own module: `method=peft method.params.peft_type=HRA
method.params.config.r=8`. The config's fields are peft's own (its config dataclass for that type); a
`target_modules` given as a preset or layer names is resolved for the architecture as LoRA's is, and the types that
target linear layers get LoRA's default (`qv`) when none is given.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bench import ConfigError, closest
from bench.methods import register
from bench.methods._common import norm_modules, peft_config, peft_wrap
from bench.methods.prefix_tuning import accept_past_key_values

SET_BY_THE_HARNESS = ("task_type", "modules_to_save", "peft_type", "inference_mode", "base_model_name_or_path",
                      "revision", "auto_mapping")

NOT_LINEAR = ("SHADOW", "ADAPTION_PROMPT")  # targets are decoder blocks or attention modules: peft's default


def config_class(peft_type: str):
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    if peft_type not in PEFT_TYPE_TO_CONFIG_MAPPING:
        raise ConfigError(f"`method.params.peft_type` ({peft_type!r}) is not a peft type"
                          f"{closest(str(peft_type).upper(), PEFT_TYPE_TO_CONFIG_MAPPING)}")
    return PEFT_TYPE_TO_CONFIG_MAPPING[peft_type]


def settable_fields(peft_type: str) -> list[str]:
    return [f.name for f in dataclasses.fields(config_class(peft_type)) if f.name not in SET_BY_THE_HARNESS]


@dataclass
class PeftGenericConfig:
    OPEN_KEYS: ClassVar[tuple] = ("config",)  # any field of peft's config: checked here, against peft's dataclass
    peft_type: str = "LORA"  # a member of peft.PeftType: LORA, HRA, FOURIERFT, ... (peft-bench-methods lists them)
    config: dict[str, Any] = field(default_factory=dict)  # fields of peft's config class for that type

    def __post_init__(self):
        self.peft_type = str(self.peft_type).upper()
        known = settable_fields(self.peft_type)
        for key in self.config:
            if key not in known:
                raise ConfigError(f"`method.params.config.{key}` is not a field of peft's "
                                  f"{config_class(self.peft_type).__name__}{closest(key, known)}")


@register("peft", family="reparameterization", config=PeftGenericConfig,
          summary="any peft type by name (`method.params.peft_type`), with its own config fields")
def apply(model, cfg: PeftGenericConfig, arch):
    values = dict(cfg.config)
    if cfg.peft_type == "LN_TUNING":  # LN tuning's targets are the normalisation layers, not linear ones
        values.setdefault("target_modules", norm_modules(model, arch))
        return peft_wrap(model, config_class("LN_TUNING")(**values), arch)
    if "target_modules" in settable_fields(cfg.peft_type) and cfg.peft_type not in NOT_LINEAR:
        values.setdefault("target_modules", "qv")
    if cfg.peft_type in ("PREFIX_TUNING", "CARTRIDGE") and arch.task_kind == "classification":
        accept_past_key_values(model)  # see prefix_tuning.py
    return peft_wrap(model, peft_config(cfg.peft_type, values, model, arch), arch)
