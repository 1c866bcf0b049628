"""Typed trial configuration: Hydra's DictConfig in, dataclasses out, validated with clear messages.

    from bench.config import compose
    cfg = compose("method=full", "train.max_steps=20")     # what `peft-bench method=full train.max_steps=20` runs

Everything below `cli.py` takes these dataclasses, never a raw DictConfig.
Every error names the config key and the value, on one line, before any training starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import ConfigError, Unsupported, closest  # noqa: F401 (importable from here, where configs are checked)

PACKAGE_CONF = Path(__file__).parent / "conf"  # inside an installed wheel
CONF_DIR = PACKAGE_CONF if PACKAGE_CONF.is_dir() else Path(__file__).parent.parent / "conf"  # a source checkout
GROUPS = ("model", "task", "method", "train", "setting", "sweep")  # the config groups under conf/ one picks from
RUN_KEYS = ("force", "results_dir", "trial_timeout")  # how a run is carried out, not what its trial computes
# in a trial's config, but not what it computes
NOT_IN_KEY = ("hydra", "sweep_name", "cache_dir", "verbose", "learning_rate_chosen_for_model")
KEY_DEFAULTS = {"distributed": "none", "nproc": 1}  # train keys that count in the key only away from these values
# method parameters added after trials were recorded, by method: they count in the key only away from these values
PARAM_KEY_DEFAULTS = {"prefix-tuning": {"init": "random", "init_text": "Classify the topic of this news article:"}}


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
    max_eval_samples: int | None = None  # test rows scored for quality; null: the whole test split
    max_val_samples: int | None = None  # validation rows scored by `train.eval_every`; null: the whole split
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
    probe_samples: int = 256  # forgetting probe size (text windows or retrieval pairs; fewer where the text runs out)
    probe_max_length: int = 64  # tokens per probe text: 256 x 64 tokens keep SmolLM2's probe near a minute on a core
    measure_flops: bool = True
    eval_every: int | None = None  # steps between validation + probe checkpoints (the last step is one); null: none
    lr_scale: float = 1.0  # multiplies the learning rate (given or the method's): searches relative to each method
    save_checkpoint: bool = False  # keep the tuned adapter (or model) in the trial folder's checkpoint/ (for serving)
    distributed: str = "none"  # none | ddp | fsdp: one trial over train.nproc processes (bench/distributed)
    nproc: int = 1  # processes of a distributed trial, one per GPU on GPU; train.batch_size is split between them


@dataclass
class MethodConfig:
    name: str = "lora"
    learning_rate: float = 5e-4
    params: dict[str, Any] = field(default_factory=dict)  # the method's own dataclass fields


@dataclass
class MethodSchema(MethodConfig):
    """The method group's schema for composing: a method YAML may also carry a rate per model
    (`learning_rate_by_model: {smollm2-135m: 3.0e-3}`), which from_dict turns into `learning_rate` for the model the
    trial runs on, and params per model (`params_by_model: {smollm2-135m: {init: text}}`), which its params read;
    the trial's config, its key and its record keep only MethodConfig's fields."""

    learning_rate_by_model: dict[str, Any] = field(default_factory=dict)
    # the models whose validation split chose `learning_rate` (sweep=lr-search); with learning_rate_by_model's
    # models, what from_dict reads to say whether a trial's rate was chosen for its own model
    learning_rate_chosen_on: list[str] = field(default_factory=list)
    # {model: {param: value}}, chosen on validation per model as rates are; the YAML's params read it through an
    # interpolation, so a param given on the command line still wins: init: ${oc.select:'method.params_by_model.${
    # model.name}.init',random}
    params_by_model: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrialConfig:
    model: ModelConfig
    task: TaskConfig
    method: MethodConfig
    train: TrainConfig
    seed: int = 0
    cache_dir: str = "~/.cache/peft-bench"
    sweep_name: str = "single"
    verbose: bool = False  # library warnings and a line per logged loss on the console; not part of the key
    # whether the rate the trial runs at was chosen on this model's validation split (False: borrowed from another
    # model, or set by hand; None: unknown). Provenance, not part of the key: from_dict sets it from the method YAML
    learning_rate_chosen_for_model: bool | None = None

    @property
    def learning_rate(self) -> float:
        rate = self.train.learning_rate if self.train.learning_rate is not None else self.method.learning_rate
        return rate * self.train.lr_scale

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key(self) -> str:
        return config_key(self.to_dict())


def config_key(values: dict) -> str:
    """Stable hash of what a trial computes (its config without NOT_IN_KEY): resume matches finished trials by it,
    not by folder name."""
    kept = {key: value for key, value in values.items() if key not in NOT_IN_KEY}
    train = kept.get("train")
    if isinstance(train, dict):  # keys added later, left out at their default: earlier records keep their key
        kept["train"] = {k: v for k, v in train.items() if KEY_DEFAULTS.get(k, object()) != v}
    method = kept.get("method")
    if isinstance(method, dict) and isinstance(method.get("params"), dict):
        kept["method"] = {**method, "params": params_in_key(method.get("name"), method["params"])}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


def params_in_key(method: str, params: dict) -> dict:
    """A method's params as its key counts them: those added later (PARAM_KEY_DEFAULTS) only away from their
    default, so a trial recorded before they existed and one run at their default are the same trial."""
    defaults = PARAM_KEY_DEFAULTS.get(method, {})
    return {k: v for k, v in params.items() if defaults.get(k, object()) != v}


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
    raws = {name: dict(raw.pop(name, {}) or {}) for name in sections}
    by_model = raws["method"].pop("learning_rate_by_model", None)
    chosen_on = raws["method"].pop("learning_rate_chosen_on", None)
    if raws["method"].pop(RATE_BY_HAND, False):  # the YAML's learning_rate was replaced on the command line
        chosen_on = []
    raws["method"].pop("params_by_model", None)  # read by the YAML's own interpolations, already resolved
    parts = {name: _build(cls, raws[name], name) for name, cls in sections.items()}
    if by_model:
        parts["method"].learning_rate = rate_for_model(by_model, parts["model"].name, parts["method"].learning_rate)
    top_keys = [f.name for f in dataclasses.fields(TrialConfig) if f.name not in sections]
    for key in raw:
        if key not in top_keys:
            raise ConfigError(f"`{key}` is not a known key{closest(key, top_keys + list(sections) + list(RUN_KEYS))}")
    top = {k: raw[k] for k in top_keys if k in raw}
    cfg = TrialConfig(**parts, **top)
    if "learning_rate_chosen_for_model" not in raw:  # a trial's own saved config already says it
        cfg.learning_rate_chosen_for_model = rate_chosen_for_model(cfg, by_model or {}, chosen_on or [])
    for f in dataclasses.fields(TrialConfig):
        _check_type(getattr(cfg, f.name), f.type, f.name)
    validate(cfg)
    return cfg


def rate_for_model(by_model, model: str, default: float) -> float:
    """The method's learning rate on `model`: its entry in `method.learning_rate_by_model`, else `default` (an explicit
    train.learning_rate still wins over both: TrialConfig.learning_rate)."""
    if not isinstance(by_model, dict):
        raise ConfigError(f"`method.learning_rate_by_model` ({by_model!r}) must be a mapping of model name to rate")
    for name, rate in by_model.items():
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
            raise ConfigError(f"`method.learning_rate_by_model.{name}` ({rate!r}) must be a number > 0")
    return float(by_model.get(model, default))


def chosen_rates(method: str) -> dict[str, float]:
    """{model: the learning rate its validation search chose for `method`}, read from conf/method/<method>.yaml:
    `learning_rate` for the models of `learning_rate_chosen_on`, then `learning_rate_by_model`'s entries (empty for
    a method with no YAML)."""
    import yaml

    path = CONF_DIR / "method" / f"{method}.yaml"
    raw = (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}
    rates = {model: raw.get("learning_rate") for model in raw.get("learning_rate_chosen_on") or []}
    return {model: float(rate) for model, rate in {**rates, **(raw.get("learning_rate_by_model") or {})}.items()}


RATE_BY_HAND = "learning_rate_set_by_hand"  # put in a composed method by note_rate_by_hand, read by from_dict


def note_rate_by_hand(raw: dict, overrides) -> dict:
    """Mark the composed config (in place) when the command line set `method.learning_rate`: that rate was not
    chosen on any model (a model's own learning_rate_by_model entry still wins over it, and stays chosen)."""
    keys = {str(o).split("=", 1)[0].lstrip("+~") for o in overrides or []}
    if "method.learning_rate" in keys and isinstance(raw.get("method"), dict):
        raw["method"][RATE_BY_HAND] = True
    return raw


def rate_chosen_for_model(cfg: TrialConfig, by_model: dict, chosen_on: list) -> bool:
    """Whether cfg.learning_rate was chosen on validation for cfg's own model: the method YAML's rate for that model
    (learning_rate_by_model), or its `learning_rate` where `learning_rate_chosen_on` names the model; a rate set by
    hand (train.learning_rate; method.learning_rate, see note_rate_by_hand) or scaled (train.lr_scale, as a search's
    candidates are) was not."""
    if cfg.train.learning_rate is not None or cfg.train.lr_scale != 1:
        return False
    return cfg.model.name in by_model or cfg.model.name in list(chosen_on)


def validate(cfg: TrialConfig) -> None:
    """Checks that need no model or data, the method's own among them (its params dataclass, where register() was
    given the methods): bad input stops here, before any process starts or anything loads."""
    if cfg.method.name in METHODS:
        METHODS[cfg.method.name].build_config(cfg.method.params)
    train = cfg.train
    for key in ("max_steps", "batch_size", "eval_batch_size", "max_length", "latency_repeats", "probe_samples",
                "nproc"):
        if getattr(train, key) < 1:
            raise ConfigError(f"`train.{key}` ({getattr(train, key)}) must be >= 1")
    if train.warmup_steps < 0 or train.warmup_steps >= train.max_steps:
        raise ConfigError(
            f"`train.warmup_steps` ({train.warmup_steps}) must be >= 0 and smaller than "
            f"`train.max_steps` ({train.max_steps})"
        )
    if train.eval_every is not None and train.eval_every < 1:
        raise ConfigError(f"`train.eval_every` ({train.eval_every}) must be >= 1 or null")
    if train.lr_scale <= 0:
        raise ConfigError(f"`train.lr_scale` ({train.lr_scale}) must be > 0")
    if cfg.learning_rate <= 0:
        raise ConfigError(f"`train.learning_rate` ({cfg.learning_rate}) must be > 0")
    choices = {
        "train.precision": (train.precision, ("auto", "fp32", "bf16", "fp16")),
        "train.device": (train.device, ("auto", "cpu", "cuda")),
        "train.distributed": (train.distributed, DISTRIBUTED),
        "task.kind": (cfg.task.kind, ("classification", "generation")),
        "model.loader": (cfg.model.loader, ("package", "gguf-package", "hub", "tiny")),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise ConfigError(f"`{key}` ({value!r}) must be one of {', '.join(allowed)}{closest(str(value), allowed)}")
    _check_distributed(train)
    if cfg.model.loader == "hub":
        _check_hub_model(cfg.model.name_or_path)
    if cfg.task.primary_metric not in cfg.task.metrics:
        raise ConfigError(
            f"`task.primary_metric` ({cfg.task.primary_metric!r}) must be one of `task.metrics` {cfg.task.metrics}"
        )


DISTRIBUTED = ("none", "ddp", "fsdp")


def _check_distributed(train: TrainConfig) -> None:
    """How a trial spreads over processes; the GPU count is checked where torch is loaded (bench.distributed)."""
    if train.distributed not in DISTRIBUTED:
        return  # named by the choices check
    if train.distributed == "none" and train.nproc > 1:
        raise ConfigError(f"`train.nproc` ({train.nproc}) needs `train.distributed` (ddp or fsdp), not 'none'")
    if train.distributed != "none" and train.batch_size % train.nproc:
        # train.batch_size stays the global batch, so quality compares across process counts
        raise ConfigError(f"`train.batch_size` ({train.batch_size}) must divide evenly between `train.nproc` "
                          f"({train.nproc}) processes")
    if train.distributed != "none" and train.eval_every is not None:
        raise ConfigError(f"`train.eval_every` ({train.eval_every}) is not available with `train.distributed` "
                          f"({train.distributed!r}): the learning curve is measured in one process")


POSITION_LIMITS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def check_max_length(train: TrainConfig, model_config, model_name: str, virtual_tokens: int = 0) -> None:
    """`train.max_length`, and a soft prompt's `virtual_tokens` before it, within the positions the model has (past
    them a position table runs out mid-training); call it with the model's transformers config before anything
    loads."""
    limit = next((getattr(model_config, name) for name in POSITION_LIMITS
                  if isinstance(getattr(model_config, name, None), int)), None)
    if limit is not None and train.max_length > limit:
        raise ConfigError(f"`train.max_length` ({train.max_length}) is above the {limit} positions of "
                          f"`model` ({model_name!r}): use {limit} or less")
    if limit is not None and virtual_tokens + train.max_length > limit:
        raise ConfigError(f"`method.params.num_virtual_tokens` ({virtual_tokens}) plus `train.max_length` "
                          f"({train.max_length}) is above the {limit} positions of `model` ({model_name!r}): use "
                          f"at most {limit - train.max_length} virtual tokens, or a shorter train.max_length")


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")  # `name` or `org/name`


def _check_hub_model(name_or_path: str | None) -> None:
    if not name_or_path:
        raise ConfigError("`model.name_or_path` is required with `model.loader=hub` (a Hub id or a local folder)")
    if not Path(name_or_path).expanduser().is_dir() and not HUB_ID.fullmatch(name_or_path):
        raise ConfigError(f"`model.name_or_path` ({name_or_path!r}) is neither a folder nor a Hub id (org/name)")


def name_from_path(where, default: str) -> str:
    """What to call a model or data set given by path or Hub id when the config names it not (`model.name`,
    `task.name` interpolate this): a folder's name, a file's stem, the folder that several files share, else the
    last part of a Hub id; `default` when nothing is given. Paths stay out of names (and in the config)."""
    leaves = where.values() if hasattr(where, "values") else [where] if isinstance(where, str) else where or []
    paths = [Path(str(leaf)).expanduser() for leaf in leaves if leaf]
    if not paths:
        return default
    if len(paths) == 1:
        path = paths[0]
        return path.stem if path.is_file() else path.resolve().name if path.is_dir() else path.name
    folders = {path.resolve().parent for path in paths}
    return folders.pop().name if len(folders) == 1 else paths[0].stem


SCHEMAS = {"model": ModelConfig, "task": TaskConfig, "method": MethodSchema, "train": TrainConfig}
METHODS: dict = {}  # name -> the registry's Method, as register() was given them: from_dict checks params with them


def register(methods: dict | None = None) -> None:
    """What composing conf/ needs from Python: each group's dataclass as its Hydra schema (`defaults:
    [/schema/<group>@_here_, _self_]` in every group YAML) and each method's params dataclass as the schema of
    `method.params` (`/schema/params/<method>@params`), so every key exists with its default, in one place, and can
    be overridden without a `+`; and the `name_from_path` resolver. Stored outside the groups themselves, so
    `method=glob(*)` sees only real methods.

    The methods are the caller's to give (`register(bench.methods.registry())`, once per process: the faces and the
    tests do): the config sits below the method registry and does not import it. Later calls keep them."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    METHODS.update(methods or {})
    store = ConfigStore.instance()
    for group, cls in SCHEMAS.items():
        store.store(group="schema", name=group, node=cls)
    for name, method in (methods or {}).items():
        store.store(group="schema/params", name=name, node=method.schema())
    OmegaConf.register_new_resolver("name_from_path", name_from_path, replace=True)
    # launcher presets size a trial's request by its processes: cpus_per_task: ${multiply:8,${train.nproc}}
    OmegaConf.register_new_resolver("multiply", lambda a, b: int(a) * int(b), replace=True)


def pop_run_options(raw: dict) -> dict:
    """Take RUN_KEYS out of a composed config (in place): what is left builds the TrialConfig."""
    return {key: raw.pop(key, None) for key in RUN_KEYS}


def compose_raw(*overrides: str, config_name: str = "config") -> dict:
    """The resolved config `peft-bench OVERRIDES` would run, as a plain dict, without RUN_KEYS; another primary
    config under conf/ with `config_name` (peft-bench-serve's is `serve/config`)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    register()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            raw = OmegaConf.to_container(hydra_compose(config_name=config_name, overrides=list(overrides)),
                                         resolve=True)
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(omegaconf_error_line(error)) from error
    pop_run_options(raw)
    return raw


def compose(*overrides: str) -> TrialConfig:
    """The typed, validated TrialConfig of `peft-bench OVERRIDES` (a single run; no sweep syntax)."""
    return from_dict(note_rate_by_hand(compose_raw(*overrides), overrides))


def exit_on_bad_input(program: str, run) -> None:
    """Run a command's `run()` so that bad input, on the command line or in composing conf/, ends in one line naming
    the key and the value, and exit 2, instead of Hydra's page (a user's own HYDRA_FULL_ERROR=1 still gets it)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    traces = bool(os.environ.get("HYDRA_FULL_ERROR"))
    try:
        os.environ["HYDRA_FULL_ERROR"] = "1"  # composition errors reach us instead of being printed by Hydra
        run()
    except (ConfigError, HydraException, OmegaConfBaseException) as error:
        if traces and not isinstance(error, ConfigError):
            raise
        print(f"{program}: {error if isinstance(error, ConfigError) else omegaconf_error_line(error)}", file=sys.stderr)
        sys.exit(2)


def omegaconf_error_line(error: Exception) -> str:
    """One line naming the key and the value, for an error Hydra or OmegaConf raised while composing."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, MissingMandatoryValue, ValidationError

    cause = error
    while (cause.__cause__ or cause.__context__) is not None and not getattr(cause, "full_key", None):
        cause = cause.__cause__ or cause.__context__
    key = getattr(cause, "full_key", None)
    if not key:  # Hydra's own message: its lines joined into one
        return " ".join(line.strip() for line in str(error).strip().splitlines() if line.strip())
    if isinstance(cause, MissingMandatoryValue):
        return f"`{key}` has no value: give one, e.g. {key}=..."
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)):
        parent = getattr(cause, "parent_node", None)
        known = [str(k) for k in parent.keys()] if hasattr(parent, "keys") else []
        return f"`{key}` is not a known key" + (closest(str(cause.key), known) if known else "")
    if isinstance(cause, ValidationError):
        message = str(cause.msg).strip().splitlines()[0]
        wanted = next((text for word, text in WANTED.items() if word in message), message)
        return f"`{key}` ({cause.value!r}) must be {wanted}"
    return f"`{key}`: {str(cause.msg).strip().splitlines()[0]}"


WANTED = {"Integer": "an integer", "Float": "a number", "bool": "true or false", "Enum": "one of its choices"}


def check_group_choices(argv: list[str]) -> None:
    """Unknown `method=`/`model=`/... names fail with one line naming the closest valid ones (not Hydra's page)."""
    dirs = _config_dirs(argv)
    for arg in argv:
        match = re.fullmatch(rf"\+?({'|'.join(GROUPS)})=(.+)", arg)
        if not match or match.group(2).startswith(("glob(", "range(")):
            continue
        group, value = match.groups()
        if value.startswith("["):  # Hydra would merge every listed config into one trial
            raise ConfigError(f"`{group}` ({value}) is a list, which would merge those configs into one trial; to run "
                              f"each, sweep them: -m {group}={value.strip('[]')}")
        inner = re.fullmatch(r"choice\((.*)\)", value)
        values = (inner.group(1) if inner else value).split(",")
        available = {p.stem for d in dirs for p in (d / group).glob("*.yaml")}
        for name in (v.strip().strip("'\"") for v in values):
            if name not in available:
                raise ConfigError(f"`{group}` ({name!r}) is not in conf/{group}/{closest(name, available)}")


def _config_dirs(argv: list[str]) -> list[Path]:
    dirs = [CONF_DIR]
    for flag, value in zip(argv, argv[1:] + [""]):
        if flag in ("--config-dir", "-cd"):
            dirs.append(Path(value))
        elif flag.startswith("--config-dir="):
            dirs.append(Path(flag.split("=", 1)[1]))
    return dirs
