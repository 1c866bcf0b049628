"""Typed trial configuration: Hydra's DictConfig in, dataclasses out, validated with clear messages.

Everything below `cli.py` takes these dataclasses, never a raw DictConfig.
Every error names the config key and the value, on one line, before any training starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """Bad input: the message names the config key and the value."""


class Unsupported(ConfigError):
    """A valid configuration this combination cannot run (e.g. QLoRA without a GPU): recorded as `skipped`."""


def closest(name: str, choices) -> str:
    """' (closest: a, b)' for an unknown name, or '' when nothing is close."""
    matches = difflib.get_close_matches(name, sorted(choices), n=3, cutoff=0.5)
    return f"; closest: {', '.join(matches)}" if matches else f"; valid: {', '.join(sorted(choices))}"


@dataclass
class ModelConfig:
    name: str = "minilm-l6"  # short name used in records and plots
    loader: str = "package"  # package | gguf-package | hub | tiny
    name_or_path: str | None = None  # Hub id or local folder (loader=hub)
    package: str | None = None  # pip pin of the package carrying the weights (embedded loaders)
    package_subdir: str = ""  # folder inside the package holding the weights
    gguf_file: str | None = None  # GGUF file inside the package (loader=gguf-package)
    arch: str | None = None  # tiny models only: bert | llama
    trust_remote_code: bool = False  # off unless asked: remote code runs arbitrary Python
    revision: str | None = None


@dataclass
class TaskConfig:
    name: str = "bbc-topic"
    kind: str = "classification"  # classification | generation
    source: str = "bbc"  # bbc | files | hub
    dataset: dict[str, Any] = field(default_factory=dict)  # load_dataset kwargs (source=hub) or {"data_files": ...}
    text_column: str = "text"
    label_column: str = "label"  # class label (classification) or target text (generation)
    metrics: list[str] = field(default_factory=lambda: ["accuracy", "f1_macro"])
    primary_metric: str = "accuracy"
    validation_fraction: float = 0.1
    test_fraction: float = 0.2
    max_train_samples: int | None = None
    max_eval_samples: int = 200  # held-out examples scored for quality
    prompt_template: str = "{text}"  # generation: how the input is shown to a causal LM
    max_new_tokens: int = 24  # generation: length of generated targets


@dataclass
class TrainConfig:
    max_steps: int = 60
    batch_size: int = 16
    eval_batch_size: int = 32
    max_length: int = 128  # tokens per example (input + target for generation)
    learning_rate: float | None = None  # null: the method's own learning rate from its YAML
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0  # gradient clipping; null turns it off
    lr_warmup_steps: int = 0
    lr_scheduler: str = "linear"
    warmup_steps: int = 3  # steps excluded from speed figures (allocator, caches, lazy init)
    log_every: int = 10
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16
    device: str = "auto"  # auto | cpu | cuda
    threads: int | None = None  # torch intra-op threads; null: torch's default
    latency_batch_size: int = 8
    latency_repeats: int = 20
    latency_warmup: int = 3
    probe_samples: int = 64  # forgetting probe size (text chunks or retrieval pairs)
    measure_flops: bool = True


@dataclass
class MethodConfig:
    name: str = "lora"
    learning_rate: float = 5e-4
    params: dict[str, Any] = field(default_factory=dict)  # the method's own dataclass fields


@dataclass
class TrialConfig:
    model: ModelConfig
    task: TaskConfig
    method: MethodConfig
    train: TrainConfig
    seed: int = 0
    cache_dir: str = "~/.cache/peft-bench"
    sweep_name: str = "single"

    @property
    def learning_rate(self) -> float:
        return self.train.learning_rate if self.train.learning_rate is not None else self.method.learning_rate

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """Stable hash of what the trial computes: resume matches finished trials by it, not by folder name."""
        identity = self.to_dict()
        identity.pop("sweep_name")
        identity.pop("cache_dir")
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _build(cls, values: dict, prefix: str):
    """Dataclass from a plain dict; unknown keys and wrong types name the full key."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(f"`{prefix}.{key}` is not a known key{closest(key, known)}")
    obj = cls(**values)
    for name, f in known.items():
        _check_type(getattr(obj, name), f.type, f"{prefix}.{name}")
    return obj


def _check_type(value, type_str, key: str) -> None:
    # Field annotations are strings (postponed evaluation); numbers are the only ones worth checking here.
    if value is None or not isinstance(type_str, str):
        return
    wants_number = type_str.startswith(("int", "float"))
    if wants_number and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"`{key}` ({value!r}) must be a number")


def from_dict(raw: dict) -> TrialConfig:
    """Typed, validated TrialConfig from the resolved Hydra config (as a plain dict)."""
    raw = dict(raw)
    raw.pop("hydra", None)
    sections = {
        "model": ModelConfig,
        "task": TaskConfig,
        "method": MethodConfig,
        "train": TrainConfig,
    }
    parts = {name: _build(cls, dict(raw.pop(name, {}) or {}), name) for name, cls in sections.items()}
    top = {k: raw[k] for k in ("seed", "cache_dir", "sweep_name") if k in raw}
    cfg = TrialConfig(**parts, **top)
    validate(cfg)
    return cfg


def validate(cfg: TrialConfig) -> None:
    """Checks that need no model or data; the method's own checks run through its dataclass."""
    train = cfg.train
    for key in ("max_steps", "batch_size", "eval_batch_size", "max_length", "latency_repeats", "probe_samples"):
        if getattr(train, key) < 1:
            raise ConfigError(f"`train.{key}` ({getattr(train, key)}) must be >= 1")
    if train.warmup_steps < 0 or train.warmup_steps >= train.max_steps:
        raise ConfigError(
            f"`train.warmup_steps` ({train.warmup_steps}) must be >= 0 and smaller than "
            f"`train.max_steps` ({train.max_steps})"
        )
    if cfg.learning_rate <= 0:
        raise ConfigError(f"`train.learning_rate` ({cfg.learning_rate}) must be > 0")
    choices = {
        "train.precision": (train.precision, ("auto", "fp32", "bf16", "fp16")),
        "train.device": (train.device, ("auto", "cpu", "cuda")),
        "task.kind": (cfg.task.kind, ("classification", "generation")),
        "task.source": (cfg.task.source, ("bbc", "files", "hub")),
        "model.loader": (cfg.model.loader, ("package", "gguf-package", "hub", "tiny")),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise ConfigError(f"`{key}` ({value!r}) must be one of {', '.join(allowed)}{closest(str(value), allowed)}")
    if cfg.model.loader == "hub" and not cfg.model.name_or_path:
        raise ConfigError("`model.name_or_path` is required with `model.loader=hub` (a Hub id or a local folder)")
    if cfg.task.primary_metric not in cfg.task.metrics:
        raise ConfigError(
            f"`task.primary_metric` ({cfg.task.primary_metric!r}) must be one of `task.metrics` {cfg.task.metrics}"
        )


SCHEMAS = {"model": ModelConfig, "task": TaskConfig, "method": MethodConfig, "train": TrainConfig}


def register_schemas() -> None:
    """Each group's dataclass as its Hydra schema (`defaults: [/schema/<group>@_here_, _self_]` in every group
    YAML), so every key exists with its default and can be overridden on the command line without a `+`.
    Stored outside the groups themselves, so `method=glob(*)` sees only real methods."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for group, cls in SCHEMAS.items():
        store.store(group="schema", name=group, node=cls)
