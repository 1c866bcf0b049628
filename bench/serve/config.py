"""The serving trial's configuration: the training trial's sections (model, task, method, train, seed) plus `serve`.

    from bench.serve.config import compose
    cfg = compose("model=tiny-bert", "serve.k=4")      # what `peft-bench-serve model=tiny-bert serve.k=4` runs

`ServeConfig` is the one place the serving defaults live: conf/serve/config.yaml takes it as the schema of `serve`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from bench import config, methods
from bench.config import ConfigError, TrialConfig, closest

STREAMS = ("uniform", "zipf", "round-robin")  # request popularity: even, skewed, and the worst case for swapping
MODES = ("mixed", "single", "merged")  # how a window of requests is served (besides the base alone)
FRESH = "fresh"  # serve.adapters: K adapters initialised here, with K seeds (what serving costs, not what it scores)
CONFIG_NAME = "serve/config"  # the primary config of peft-bench-serve, under conf/


@dataclass
class ServeConfig:
    k: int = 1  # tasks served from one base: adapters resident at once (conf/serve/config.yaml sweeps 1 to 32)
    adapters: str = FRESH  # fresh | a sweep's results folder (trials run with train.save_checkpoint=true)
    fresh_noise: float = 0.02  # fresh adapters: std of the noise added to every trained tensor so the K differ
    requests: int = 32  # requests in each stream
    batch_size: int = 8  # requests that arrive together and are answered together (one window)
    max_length: int = 64  # tokens per request (every request padded to it, so requests cost the same)
    streams: list[str] = field(default_factory=lambda: list(STREAMS))
    zipf_exponent: float = 1.1  # zipf: adapter of popularity rank r is asked with probability ~ 1 / r^exponent
    repeats: int = 3  # rounds of every stream x mode, interleaved so machine noise spreads over all; medians
    swap_repeats: int = 20  # timed switches per swap kind
    warmup: int = 1  # untimed windows before each mode's timed ones
    copies: bool = True  # measure the K-full-copies baseline (false: its figures are n/a)
    copies_memory_fraction: float = 0.5  # copies are loaded while they fit this share of the memory then available
    work_dir: str | None = None  # where adapters and full copies are written while measured; null: the temp dir


@dataclass
class ServeTrial:
    """One serving trial: what to serve (`trial`: model, task, method, train, seed) and how (`serve`)."""

    trial: TrialConfig
    serve: ServeConfig

    def to_dict(self) -> dict:
        return {**self.trial.to_dict(), "serve": dataclasses.asdict(self.serve)}

    def key(self) -> str:
        return config.config_key(self.to_dict())


def from_dict(raw: dict) -> ServeTrial:
    """Typed, validated ServeTrial from the resolved config (a plain dict); ConfigError names the key."""
    raw = dict(raw)
    values = dict(raw.pop("serve", None) or {})
    known = {f.name for f in dataclasses.fields(ServeConfig)}
    for key in values:
        if key not in known:
            raise ConfigError(f"`serve.{key}` is not a known key{closest(key, known)}")
    serve = ServeConfig(**values)
    validate(serve)
    return ServeTrial(config.from_dict(raw), serve)


def validate(serve: ServeConfig) -> None:
    """Checks that need no model: counts, choices, and that an adapters folder exists."""
    for key in ("k", "requests", "batch_size", "max_length", "repeats", "swap_repeats"):
        value = getattr(serve, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"`serve.{key}` ({value!r}) must be an integer >= 1")
    if serve.warmup < 0:
        raise ConfigError(f"`serve.warmup` ({serve.warmup!r}) must be >= 0")
    for stream in serve.streams:
        if stream not in STREAMS:
            raise ConfigError(f"`serve.streams` ({stream!r}) is not a request stream{closest(stream, STREAMS)}")
    if not serve.zipf_exponent > 0:
        raise ConfigError(f"`serve.zipf_exponent` ({serve.zipf_exponent!r}) must be > 0")
    if not serve.fresh_noise >= 0:
        raise ConfigError(f"`serve.fresh_noise` ({serve.fresh_noise!r}) must be >= 0")
    if not 0 < serve.copies_memory_fraction <= 1:
        raise ConfigError(f"`serve.copies_memory_fraction` ({serve.copies_memory_fraction!r}) must be in (0, 1]")
    if serve.adapters != FRESH and not Path(serve.adapters).expanduser().is_dir():
        raise ConfigError(f"`serve.adapters` ({serve.adapters!r}) is not a folder: give a sweep's results folder "
                          f"or `{FRESH}`")


def register() -> None:
    """ServeConfig as the schema of `serve` (`/schema/serve@serve`), beside the groups and methods bench.config
    registers."""
    from hydra.core.config_store import ConfigStore

    config.register(methods.registry())
    ConfigStore.instance().store(group="schema", name="serve", node=ServeConfig)


def compose_raw(*overrides: str) -> dict:
    """The resolved config `peft-bench-serve OVERRIDES` would run (one job), as a plain dict without RUN_KEYS."""
    register()  # the `serve` schema, which bench.config's own register() does not know
    return config.compose_raw(*overrides, config_name=CONFIG_NAME)


def compose(*overrides: str) -> ServeTrial:
    return from_dict(compose_raw(*overrides))
