"""Method registry: each method is one module here, registered by name with `@register`.

Adding a method touches one module, one YAML under conf/method/ and one row of the method test table.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable

from bench import ConfigError, closest
from bench.common.families import FAMILIES  # also read here by callers not yet importing it from bench.common


@dataclass(frozen=True)
class Method:
    name: str
    family: str  # one of FAMILIES
    config_cls: type  # the method's own dataclass; its fields are `method.params.*`
    apply: Callable[..., Any]  # apply(model, cfg, arch) -> model with only the method's parameters trainable
    summary: str  # one line for the README method table
    merges: bool = False  # can fold into the base weights, leaving no inference overhead
    callbacks: Callable[..., list] | None = None  # callbacks(model, cfg, max_steps) -> TrainerCallbacks (e.g. AdaLoRA)
    peft_type: str | None = None  # the member of peft.PeftType it runs; None: own code (see _peft_types.py)
    mixed_batches: bool = False  # peft serves a batch whose rows use different adapters (`adapter_names=`)
    # optimizer(model, cfg, lr, weight_decay) -> the torch optimizer to train with (LoRA-FA's, LoRA+'s from
    # peft.optimizers), handed to the Trainer as `optimizers=(it, None)`; None: the Trainer's own AdamW
    optimizer: Callable[..., Any] | None = None

    def build_config(self, params: dict):
        """The method's dataclass from `method.params`; its __post_init__ checks values."""
        known = {f.name for f in dataclasses.fields(self.config_cls)}
        for key in params:
            if key not in known:
                raise ConfigError(f"`method.params.{key}` is not a parameter of {self.name}{closest(key, known)}")
        return self.config_cls(**params)

    def schema(self):
        """The Hydra schema of `method.params`: the dataclass, with the dict fields it names in OPEN_KEYS open to
        new keys (`method.params.config.r=8` for the generic peft path, without Hydra's `+`)."""
        open_keys = getattr(self.config_cls, "OPEN_KEYS", ())
        if not open_keys:
            return self.config_cls
        from omegaconf import OmegaConf

        node = OmegaConf.structured(self.config_cls)
        for key in open_keys:
            OmegaConf.set_struct(node[key], False)
        return node


_REGISTRY: dict[str, Method] = {}


def register(name: str, *, family: str, config: type, summary: str, merges: bool = False, callbacks=None,
             peft_type: str | None = None, mixed_batches: bool = False, optimizer=None):
    """Decorator for a method's apply function: one registration call per method. An apply built by
    `apply_peft_type` carries its peft type, so the module names it once, there."""
    assert family in FAMILIES, family

    def wrap(apply):
        if name in _REGISTRY:
            raise RuntimeError(f"method {name!r} registered twice")
        carried = getattr(apply, "peft_type", None)
        if peft_type and carried and peft_type != carried:
            raise RuntimeError(f"method {name!r} registered as {peft_type} but its apply runs {carried}")
        _REGISTRY[name] = Method(name, family, config, apply, summary, merges=merges, callbacks=callbacks,
                                 peft_type=peft_type or carried, mixed_batches=mixed_batches, optimizer=optimizer)
        return apply

    return wrap


_ALL_IMPORTED = False


def _import_all() -> None:
    global _ALL_IMPORTED
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_") and info.name != "cli":
            importlib.import_module(f"{__name__}.{info.name}")
    _ALL_IMPORTED = True


def registry() -> dict[str, Method]:
    if not _ALL_IMPORTED:  # not `if not _REGISTRY`: importing one method module first would hide the others
        _import_all()
    return dict(_REGISTRY)


def get(name: str) -> Method:
    methods = registry()
    if name not in methods:
        raise ConfigError(f"`method.name` ({name!r}) is not a registered method{closest(name, methods)}")
    return methods[name]


def check(condition: bool, key: str, value, requirement: str) -> None:
    """One-line validation used by method dataclasses: check(r >= 1, 'r', r, 'must be >= 1')."""
    if not condition:
        raise ConfigError(f"`method.params.{key}` ({value!r}) {requirement}")


def check_counts(cfg, *names: str) -> None:
    """Each named field of a method's dataclass is a whole count >= 1 (a rank, a width, a number of tokens)."""
    for name in names:
        value = getattr(cfg, name)
        check(isinstance(value, int) and not isinstance(value, bool) and value >= 1, name, value,
              "must be an integer >= 1")
