"""Prefix tuning (Li & Liang, 2021) through peft: trainable key/value vectors prepended in every attention layer.

For classification, peft hands the prefix to the model's forward only where that forward names peft's cache
argument; otherwise it runs the backbone alone and feeds its second output (the cache itself) to the classifier.
peft 0.21 looks for `past_key_values`, which transformers 5 renamed `cache` (the old name still works as a
deprecated keyword): `accept_past_key_values` gives the instance a forward with the old name, so the prefix reaches
the attention layers. peft 0.22 looks for the name the installed transformers uses, and the shim stays off. Loading
such a checkpoint needs it too.

Where the prefix starts matters. peft draws it from N(0, 1) (`init=random`, its default): on minilm-l6 that is the
scale of the model's own keys and values, but SmolLM2-135M's values have a standard deviation of 0.044 in its first
layer, so a random prefix's values are ~20x the model's own and swamp every attention output before the first step.
`init=zero` is peft's zero start (keys and values 0: the prefix only takes attention mass); `init=text` is the
paper's start, the keys and values the base model itself computes for `init_text`'s tokens (repeated to fill the
prefix), written here because peft has no such option for prefix tuning.
"""

import inspect
import types
from dataclasses import dataclass
from typing import ClassVar

from bench import ConfigError, Unsupported
from bench.methods import register
from bench.methods._common import SoftPromptConfig, peft_wrap


@dataclass
class PrefixTuningConfig(SoftPromptConfig):
    CHOICES: ClassVar[dict[str, tuple]] = {"init": ("random", "zero", "text")}
    projection: bool = False  # reparameterise the prefix through an MLP (the paper's trick for stability)
    projection_hidden: int = 512  # hidden width of that MLP
    init: str = "random"  # random (peft's N(0, 1)) | zero | text (the base model's keys and values of init_text)
    init_text: str = "Classify the topic of this news article:"

    def __post_init__(self):
        super().__post_init__()
        if self.init == "text" and self.projection:
            raise ConfigError("`method.params.init` ('text') sets the prefix itself, which `method.params.projection`"
                              " (true) computes through an MLP: use one or the other")


@register("prefix-tuning", family="soft-prompt", config=PrefixTuningConfig,
          peft_type="PREFIX_TUNING",
          summary="trainable key/value prefixes in every attention layer")
def apply(model, cfg: PrefixTuningConfig, arch):
    import peft
    import torch

    peft_config = peft.PrefixTuningConfig(num_virtual_tokens=cfg.num_virtual_tokens, prefix_projection=cfg.projection,
                                          encoder_hidden_size=cfg.projection_hidden,
                                          init_weights="zero" if cfg.init == "zero" else None)
    # the base model's own keys and values, computed before peft wraps it
    text_prefix = keys_and_values_of_text(model, arch, cfg.init_text, cfg.num_virtual_tokens) \
        if cfg.init == "text" else None
    if arch.task_kind == "classification":
        accept_past_key_values(model)
    wrapped = peft_wrap(model, peft_config, arch)
    if text_prefix is not None:
        with torch.no_grad():
            wrapped.prompt_encoder["default"].embedding.weight.copy_(text_prefix)
    return wrapped


def keys_and_values_of_text(model, arch, text: str, num_tokens: int):
    """(num_tokens, layers * 2 * kv_heads * head_dim): the keys and values each attention layer caches for `text`,
    laid out as peft's prefix embedding is (per token: layer by layer, key then value, head by head)."""
    import torch

    ids = arch.tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ConfigError(f"`method.params.init_text` ({text!r}) has no tokens")
    ids = (ids * (num_tokens // len(ids) + 1))[:num_tokens]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        cache = getattr(model(input_ids=torch.tensor([ids], device=device), use_cache=True), "past_key_values", None)
    model.train(was_training)
    if cache is None or not hasattr(cache, "layers"):
        raise Unsupported("`method.params.init` ('text') needs a model that caches its attention keys and values (a"
                          " decoder); this one returns none")
    # each layer's keys and values: (1, kv_heads, tokens, head_dim) -> (tokens, 2, kv_heads, head_dim)
    per_layer = [torch.stack([layer.keys[0], layer.values[0]]).permute(2, 0, 1, 3) for layer in cache.layers]
    return torch.stack(per_layer, dim=1).reshape(num_tokens, -1)


def _forward_taking_past_key_values(self, *args, past_key_values=None, **kwargs):
    return type(self).forward(self, *args, cache=past_key_values, **kwargs)


def _cache_name_peft_checks() -> str:
    try:
        from peft.import_utils import get_transformers_cache_name
    except ImportError:  # peft 0.21 and earlier look for the old name
        return "past_key_values"
    return get_transformers_cache_name()


def accept_past_key_values(model):
    """Let peft's signature check find its cache argument; a no-op where the forward already names it."""
    if _cache_name_peft_checks() not in inspect.signature(model.forward).parameters:
        model.forward = types.MethodType(_forward_taking_past_key_values, model)
    return model
