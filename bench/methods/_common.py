"""Shared pieces of methods: freezing, the task head, target-module resolution, peft wrapping."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from bench import ConfigError
from bench.methods import check, check_counts

if TYPE_CHECKING:  # annotations only: registering a method must not import torch (the CLI composes configs first)
    import torch.nn as nn

    from bench.models.arch import Arch

TARGET_PRESETS = ("qv", "attention", "mlp", "all-linear")


@dataclass
class LowRankConfig:
    """What the low-rank update methods (LoRA and its variants, LoHa, LoKr) share: rank, scale, where."""

    r: int = 8  # rank of the update (of each factor, for LoHa and LoKr)
    alpha: float = 8  # the update is scaled by alpha / r
    target_modules: Any = "qv"  # qv (LoRA paper) | attention | mlp | all-linear | list of layer names or regexes

    def __post_init__(self):
        check_counts(self, "r")
        check(self.alpha > 0, "alpha", self.alpha, "must be > 0")


@dataclass
class SoftPromptConfig:
    """What the soft-prompt methods share: how many virtual tokens; a subclass lists its fields' allowed values."""

    CHOICES: ClassVar[dict[str, tuple]] = {}  # field -> the values it may take
    num_virtual_tokens: int = 20  # length of the soft prompt (per layer, for prefix tuning)

    def __post_init__(self):
        check_counts(self, "num_virtual_tokens")
        for name, allowed in self.CHOICES.items():
            value = getattr(self, name)
            check(value in allowed, name, value, f"must be {' or '.join(map(str, allowed))}")


def freeze_all_but(model: nn.Module, trainable) -> nn.Module:
    """requires_grad only for parameters whose name satisfies `trainable(name)`."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(bool(trainable(name)))
    return model


def in_modules(names: list[str]):
    """Predicate: parameter name lies inside one of the given modules."""
    prefixes = tuple(n + "." for n in names)
    return lambda parameter_name: parameter_name.startswith(prefixes)


def resolve_targets(spec, arch: Arch, model: nn.Module, key: str = "target_modules") -> list[str]:
    """Full names of the linear layers a method adapts; `spec` is a preset or a list of names / regexes."""
    presets = {
        "qv": arch.query_value,
        "attention": arch.attention,
        "mlp": arch.mlp,
        "all-linear": arch.attention + arch.mlp,
    }
    if isinstance(spec, str) and spec in presets:
        names = presets[spec]
    else:
        patterns = [spec] if isinstance(spec, str) else list(spec)
        candidates = arch.attention + arch.mlp
        names = [n for n in candidates if any(n == p or n.endswith("." + p) or re.fullmatch(p, n) for p in patterns)]
    if not names:
        leaves = sorted({n.split(".")[-1] for n in arch.attention + arch.mlp})
        raise ConfigError(
            f"`method.params.{key}` ({spec!r}) matches no linear layer in {type(model).__name__}; "
            f"presets: {', '.join(TARGET_PRESETS)}; layer names here: {', '.join(leaves)}"
        )
    return names


def peft_task_type(arch: Arch) -> str:
    if arch.task_kind == "classification":
        return "SEQ_CLS"
    return "SEQ_2_SEQ_LM" if arch.kind == "seq2seq" else "CAUSAL_LM"


def peft_wrap(model: nn.Module, peft_config, arch: Arch) -> nn.Module:
    """get_peft_model, with the task head trained too (peft does that itself for SEQ_CLS heads it knows)."""
    from peft import get_peft_model

    peft_config.task_type = peft_task_type(arch)
    if arch.head:
        # configs without the field (trainable tokens, adaption prompt) still take it: peft's SEQ_CLS wrapper reads it
        peft_config.modules_to_save = sorted(set(getattr(peft_config, "modules_to_save", None) or []) | set(arch.head))
    return get_peft_model(model, peft_config)


def train_blocks(model: nn.Module, arch: Arch, blocks: list[str]) -> nn.Module:
    """Selective methods: only the named transformer blocks (and the task head) train."""
    return freeze_all_but(model, in_modules(blocks + arch.head))


def norm_modules(model: nn.Module, arch: Arch) -> list[str]:
    """Full names of the normalisation layers (LayerNorm, RMSNorm, ...) outside the head, found by class name."""
    in_head = in_modules(arch.head)
    return [name for name, module in model.named_modules()
            if "norm" in type(module).__name__.lower() and getattr(module, "weight", None) is not None
            and not in_head(name + ".")]


def linear_shape(model: nn.Module, name: str) -> tuple[int, int]:
    """(in_features, out_features) of a linear layer, nn.Linear or GPT-2's transposed Conv1D."""
    module = model.get_submodule(name)
    if hasattr(module, "in_features"):
        return module.in_features, module.out_features
    return module.weight.shape[0], module.weight.shape[1]


def peft_config(peft_type: str, values: dict, model: nn.Module, arch: Arch, key: str = "target_modules"):
    """peft's config for `peft_type` from `values` named as its dataclass's fields; `target_modules` (a preset or
    layer names) resolved for the architecture as LoRA's are. The task type goes in at construction: some configs
    (CPT) check it there."""
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    values = dict(values)
    if values.get("target_modules") is not None:
        values["target_modules"] = resolve_targets(values["target_modules"], arch, model, key)
    return PEFT_TYPE_TO_CONFIG_MAPPING[peft_type](task_type=peft_task_type(arch), **values)


def apply_peft_type(peft_type: str):
    """apply(model, cfg, arch) for a method whose dataclass fields are peft's own config fields for `peft_type`."""

    def apply(model: nn.Module, cfg, arch: Arch) -> nn.Module:
        return peft_wrap(model, peft_config(peft_type, dataclasses.asdict(cfg), model, arch), arch)

    apply.__name__ = f"apply_{peft_type.lower()}"
    apply.peft_type = peft_type  # what `register` records: the module names its type once
    return apply
