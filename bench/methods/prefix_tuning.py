"""Prefix tuning (Li & Liang, 2021) through peft: trainable key/value vectors prepended in every attention layer.

For classification, peft 0.21 looks for a `past_key_values` argument on the model's forward, which transformers 5
renamed `cache` (the old name still works as a deprecated keyword): `accept_past_key_values` gives the instance a
forward with the old name, so the prefix reaches the attention layers. Loading such a checkpoint needs it too.
"""

import inspect
import types
from dataclasses import dataclass

from bench.methods import register
from bench.methods._common import SoftPromptConfig, peft_wrap


@dataclass
class PrefixTuningConfig(SoftPromptConfig):
    projection: bool = False  # reparameterise the prefix through an MLP (the paper's trick for stability)
    projection_hidden: int = 512  # hidden width of that MLP


@register("prefix-tuning", family="soft-prompt", config=PrefixTuningConfig,
          peft_type="PREFIX_TUNING",
          summary="trainable key/value prefixes in every attention layer")
def apply(model, cfg: PrefixTuningConfig, arch):
    import peft

    peft_config = peft.PrefixTuningConfig(num_virtual_tokens=cfg.num_virtual_tokens, prefix_projection=cfg.projection,
                                          encoder_hidden_size=cfg.projection_hidden)
    if arch.task_kind == "classification":
        accept_past_key_values(model)
    return peft_wrap(model, peft_config, arch)


def _forward_taking_past_key_values(self, *args, past_key_values=None, **kwargs):
    return type(self).forward(self, *args, cache=past_key_values, **kwargs)


def accept_past_key_values(model):
    """Let peft's signature check find `past_key_values`; a no-op where the forward already names it."""
    if "past_key_values" not in inspect.signature(model.forward).parameters:
        model.forward = types.MethodType(_forward_taking_past_key_values, model)
    return model
