"""A trial's start: config -> the device and its precision -> model and data loaded, resident on the device -> the
forgetting probe and the base model's cached score -> the method applied (what training and serving start from)."""

from __future__ import annotations

import functools
import json
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers

from bench import methods, models, probes, tasks
from bench.config import ConfigError, TrialConfig, Unsupported, check_max_length
from bench.models.arch import inspect
from bench.probes import base as base_scores
from bench.trial.progress import quiet_libraries
from bench.trackers import energy, params
from bench.trackers.memory import return_freed_memory
from bench.trial.phases import Phases
from bench.trial.result import Measured


def device_of(cfg: TrialConfig) -> torch.device:
    wanted = cfg.train.device
    if wanted == "cuda" and not torch.cuda.is_available():
        raise Unsupported("`train.device` ('cuda') was asked for but no CUDA device is available")
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(wanted)


def precision(cfg: TrialConfig, device) -> str:
    """fp32, or bf16/fp16 mixed precision: weights (and the optimizer's copy of them) stay float32 for every method
    while matrix products run in the lower precision, as users train (autocast; the Trainer's bf16=/fp16=). `auto`:
    bf16 on a CUDA device that supports it, fp32 elsewhere."""
    if cfg.train.precision != "auto":
        return cfg.train.precision
    # including_emulation=False: a V100 or T4 "supports" bf16 only by emulation, far slower than fp32
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False) else "fp32"


def compute_dtype(cfg: TrialConfig, device):
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision(cfg, device)]


def autocast(cfg: TrialConfig, device):
    """The autocast of evaluation, latency and probes: the precision training ran in (none for fp32)."""
    dtype = compute_dtype(cfg, device)
    return nullcontext() if dtype == torch.float32 else torch.autocast(device.type, dtype=dtype)


@dataclass
class Base:
    """The base model as the task loads it (task head, no method), with its data and device."""

    model: object
    tokenizer: object
    data: tasks.TaskData
    arch: object
    model_kind: str
    device: object


@dataclass
class Setup(Base):
    """The model with its method applied (in place of the base's), and what training and evaluation need."""

    method: methods.Method | None = None
    method_cfg: object = None
    probe: object = None
    base_probe: dict | None = None  # {"score", "items", "weights"} of the probe on the base model


def load_base(cfg: TrialConfig, phases: Phases | None = None, found: Measured | None = None,
              method_cfg=None) -> Base:
    """config -> model and data loaded, the weights resident in memory (what a trial starts from, and what the
    base probe score is computed on). The device, threads and precision go into `found` as soon as they are known
    (a trial that fails later still records them). `method_cfg`: the method's built params, where the caller has
    them (the input's length is checked with the positions a soft prompt adds)."""
    phases, found = phases or Phases(), found if found is not None else Measured()
    quiet_libraries(cfg.verbose)  # library warnings, load reports and progress bars would bury the trial's own output
    cache_dir = Path(cfg.cache_dir).expanduser()
    with phases("config"):
        model_config = models.load_config(cfg.model, cache_dir)
        model_kind = models.kind(model_config)
        models.check_task_fits(model_kind, cfg.task.kind, cfg.model, cfg.task.name)
        if method_cfg is None:
            method_cfg = methods.get(cfg.method.name).build_config(cfg.method.params)
        check_max_length(cfg.train, model_config, cfg.model.name, _virtual_tokens(method_cfg))
        device = device_of(cfg)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        phases.energy.reader = energy.reader(device)
        if device.type == "cpu":  # before anything loads: the whole trial under one malloc policy (trackers.memory)
            return_freed_memory()
        found.add({"device": str(device), "torch_threads": torch.get_num_threads(),
                   "precision": precision(cfg, device)})
        transformers.set_seed(cfg.seed)
    with phases("load"):
        splits = tasks.raw_splits(cfg.task, cache_dir)  # checks dataset columns before the model loads
        num_labels = len(tasks.label_names(cfg.task, splits)) or None
        # float32 weights whatever the precision: bf16/fp16 are autocast over them (see precision()).
        model, tokenizer = models.load(cfg.model, cfg.task.kind, num_labels, cache_dir, dtype=torch.float32)
        data = tasks.load(cfg.task, splits, tokenizer, model_kind, cfg.train, cache_dir)
        model.to(device)
        models.make_resident(model)
        arch = inspect(model, model_kind, cfg.task.kind, tokenizer)
    return Base(model, tokenizer, data, arch, model_kind, device)


def _virtual_tokens(method_cfg) -> int:
    """Positions a soft-prompt method puts before the input (prompt, P- and prefix tuning: the prefix's keys shift
    the input's positions too); 0 for other methods."""
    return int(getattr(method_cfg, "num_virtual_tokens", 0) or 0)


def make_probe(cfg: TrialConfig, base: Base):
    """The forgetting probe for this model, prepared on the base model (None where no probe fits)."""
    lm_head = functools.partial(models.lm_head_weight, cfg.model, Path(cfg.cache_dir).expanduser())
    probe = probes.make(base.arch, base.tokenizer, base.data, cfg.train, base.device, lm_head=lm_head,
                        autocast=functools.partial(autocast, cfg, base.device))
    if probe is not None:
        probe.prepare(base.model)
    return probe


def setup(cfg: TrialConfig, phases: Phases | None = None, with_probe: bool = True,
          found: Measured | None = None) -> Setup:
    """config -> load model and data -> the probe and the base model's score (cached) -> apply the method; what it
    records (device, parameter counts, the probe's "before") goes into `found` as it is known."""
    phases, found = phases or Phases(), found if found is not None else Measured()
    with phases("config"):
        method = methods.get(cfg.method.name)
        method_cfg = method.build_config(cfg.method.params)
    base = load_base(cfg, phases, found, method_cfg)
    probe, base_probe = None, None
    if with_probe:
        with phases("probe"):
            probe = make_probe(cfg, base)
            base_probe = base_probe_of(cfg, base, probe)
    with phases("apply"):
        model = method.apply(base.model, method_cfg, base.arch).to(base.device)
        found.add(params.count(model))
        if found.figures["trainable_params"] == 0:
            raise ConfigError(f"`method` ({cfg.method.name!r}) leaves no trainable parameter in {cfg.model.name}")
    if probe is not None and models.is_quantized(model):
        with phases("probe_base"):  # the base this method trains on is the quantized one: "before" is scored on it
            base_probe = _quantized_base_probe(model, probe)
    if probe is not None:
        found.add(_probe_before(base_probe))
    return Setup(model, base.tokenizer, base.data, base.arch, base.model_kind, base.device, method=method,
                 method_cfg=method_cfg, probe=probe, base_probe=base_probe)


def _probe_before(base_probe: dict) -> dict:
    figures = {"probe_before": base_probe["score"],
               "probe_before_source": base_probe.get("source", "base model (cached)")}
    if base_probe.get("error"):
        figures["probe_error"] = base_probe["error"]
    return figures


def base_probe_of(cfg: TrialConfig, base: Base, probe) -> dict:
    """The base model's cached probe result ({"score", "items", "weights"}); score None (n/a) where the cache could
    not be filled or was filled for other probe items. Never computed here: that is shared work (bench.launch)."""
    if probe is None:
        return {"score": None}
    kept = base_scores.read(cfg, base.model_kind)
    if kept is None:
        return {"score": None, "error": "the base model's probe score was not in the cache (see the prepare step)"}
    if kept.get("probe_identity") != json.loads(json.dumps(probe.cache_identity())):
        return {"score": None, "error": "the cached base probe score was computed on other probe items"}
    return kept


def _quantized_base_probe(model, probe) -> dict:
    """The probe on the quantized base (adapters off), so forgetting is not the quantization error."""
    with model.disable_adapter():
        scored = probe.measure(model)
    return {"score": scored.value, "items": scored.items, "weights": scored.weights, "source": "quantized base"}
