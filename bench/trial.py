"""One trial: load -> apply method -> train -> evaluate -> latency, storage -> forgetting probe -> record.

Trackers wrap or listen to each phase; the phase in progress is kept so a failure records where it happened.
What trials share (the machine's peak FLOP/s, the base model's probe score) is measured before, in a process of its
own (bench.trackers.prepare), so each trial measures only itself.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from bench import methods, models, probes, tasks
from bench.config import ConfigError, TrialConfig, Unsupported, check_max_length
from bench.results.record import FAILED, OK, SKIPPED, TrialRecord, error_info, identity, provenance


class Phases:
    """The phase in progress (for the failure record), the wall seconds spent in each (for the sweep's split of
    useful work against fixed per-trial cost), where the hardware's counters are readable the joules, and what else
    ran beside it (load average, CPU share of other processes: bench.trackers.load)."""

    def __init__(self):
        from bench.trackers.energy import EnergyMeter
        from bench.trackers.load import LoadMeter

        self.current = "config"
        self.seconds: dict[str, float] = {}
        self.energy = EnergyMeter()  # no reader until the device is known (setup)
        self.load = LoadMeter()

    @contextmanager
    def __call__(self, name: str):
        self.current = name
        started, joules, load = time.perf_counter(), self.energy.start(), self.load.start()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
        self.energy.stop(name, joules)
        self.load.stop(name, load)

    def metrics(self) -> dict:
        figures = {f"seconds_{name}": round(value, 4) for name, value in self.seconds.items()}
        figures.update(self.energy.metrics())  # energy_joules_<phase> (None where the counter did not move), source
        figures.update(self.load.metrics())
        return figures


def run(cfg: TrialConfig, progress: bool = True, trial_dir: Path | None = None) -> TrialRecord:
    """Run the trial; never raises for a trial failure: the record says ok, failed (with phase) or skipped."""
    from bench.trackers.load import TRIAL_ROOT_ENV

    os.environ[TRIAL_ROOT_ENV] = str(os.getpid())  # the processes this one starts (ranks) are the trial's own
    phases = Phases()
    metrics: dict = {}
    record = TrialRecord(status=OK, config={**cfg.to_dict(), "learning_rate": cfg.learning_rate},
                         key=cfg.key(), identity=identity(cfg.to_dict()), metrics=metrics)
    try:
        from bench import distributed
        from bench.trackers.prepare import prepare

        runner = _run
        if distributed.enabled(cfg):  # the trial is a process group; this process launches it (bench.distributed)
            from bench.distributed import launch

            launch.check(cfg)
            runner = launch.run
        check_timed_steps(cfg, _device(cfg))  # before the shared work: a config with no timed step is refused
        metrics.update(prepare(cfg))  # a no-op when warm; else filled in a child, before this trial measures anything
        runner(cfg, phases, metrics, progress, record.items, trial_dir)
    except Unsupported as error:
        record.status, record.error = SKIPPED, error_info(error, "config")
    except ConfigError as error:
        record.status, record.error = FAILED, error_info(error, "config")
    except Exception as error:  # noqa: BLE001 - any failure ends this trial only; the sweep goes on
        # a distributed trial's error is its failing rank's (type, message, phase), not the launcher's
        record.status, record.error = FAILED, getattr(error, "record_error", None) or error_info(error, phases.current)
        _add_oom_memory(error, metrics)
    # a distributed trial's rank 0 already timed its phases: the launcher adds only its own (seconds_group)
    metrics.update({key: value for key, value in phases.metrics().items() if key not in metrics})
    from bench.trackers.load import alone

    metrics.update(alone(metrics))  # speed and latency verdicts are drawn only from trials timed alone
    if metrics.get("startup_seconds") is not None and metrics.get("seconds_prepare"):
        metrics["startup_seconds"] -= metrics["seconds_prepare"]  # the shared work is not this trial's start-up
    if metrics.get("energy_joules_train") and metrics.get("train_tokens"):
        metrics["train_tokens_per_joule"] = metrics["train_tokens"] / metrics["energy_joules_train"]
    record.provenance = provenance(cfg.seed, metrics.get("device", "cpu"))
    return record


def _add_oom_memory(error: BaseException, metrics: dict) -> None:
    import torch

    if isinstance(error, torch.OutOfMemoryError) and torch.cuda.is_available():
        metrics["peak_mem_bytes"] = torch.cuda.max_memory_allocated()
        metrics["mem_source"] = "cuda_allocator (at out-of-memory)"


def _device(cfg: TrialConfig):
    import torch

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
    import torch

    if cfg.train.precision != "auto":
        return cfg.train.precision
    # including_emulation=False: a V100 or T4 "supports" bf16 only by emulation, far slower than fp32
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False) else "fp32"


def compute_dtype(cfg: TrialConfig, device):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision(cfg, device)]


def autocast(cfg: TrialConfig, device):
    """The autocast of evaluation, latency and probes: the precision training ran in (none for fp32)."""
    import torch

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
class Setup:
    """A model with its method applied, and what training and evaluation need."""

    method: methods.Method
    method_cfg: object
    model: object
    tokenizer: object
    data: tasks.TaskData
    arch: object
    model_kind: str
    device: object
    probe: object = None
    base_probe: dict | None = None  # {"score", "items", "weights"} of the probe on the base model


def load_base(cfg: TrialConfig, phases: Phases | None = None, metrics: dict | None = None) -> Base:
    """config -> model and data loaded, the weights resident in memory (what a trial starts from, and what the
    base probe score is computed on)."""
    import torch
    import transformers

    phases = phases or Phases()
    metrics = {} if metrics is None else metrics
    from bench.sweep.progress import quiet_libraries

    quiet_libraries(cfg.verbose)  # library warnings, load reports and progress bars would bury the trial's own output
    cache_dir = Path(cfg.cache_dir).expanduser()
    with phases("config"):
        model_config = models.load_config(cfg.model, cache_dir)
        model_kind = models.kind(model_config)
        models.check_task_fits(model_kind, cfg.task.kind, cfg.model, cfg.task.name)
        check_max_length(cfg.train, model_config, cfg.model.name, _virtual_tokens(cfg))
        device = _device(cfg)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        from bench.trackers import energy

        phases.energy.reader = energy.reader(device)
        if device.type == "cpu":  # before anything loads: the whole trial under one malloc policy (trackers.memory)
            from bench.trackers.memory import return_freed_memory

            return_freed_memory()
        metrics["device"] = str(device)
        metrics["torch_threads"] = torch.get_num_threads()
        metrics["precision"] = precision(cfg, device)
        transformers.set_seed(cfg.seed)
    with phases("load"):
        splits = tasks.raw_splits(cfg.task, cache_dir)  # checks dataset columns before the model loads
        num_labels = len(tasks.label_names(cfg.task, splits)) or None
        # float32 weights whatever the precision: bf16/fp16 are autocast over them (see precision()).
        model, tokenizer = models.load(cfg.model, cfg.task.kind, num_labels, cache_dir, dtype=torch.float32)
        data = tasks.load(cfg.task, splits, tokenizer, model_kind, cfg.train, cache_dir)
        model.to(device)
        models.make_resident(model)
        from bench.models.arch import inspect

        arch = inspect(model, model_kind, cfg.task.kind, tokenizer)
    return Base(model, tokenizer, data, arch, model_kind, device)


def _virtual_tokens(cfg: TrialConfig) -> int:
    """Positions a soft-prompt method puts before the input (prompt, P- and prefix tuning: the prefix's keys shift
    the input's positions too); 0 for other methods."""
    method_cfg = methods.get(cfg.method.name).build_config(cfg.method.params)
    return int(getattr(method_cfg, "num_virtual_tokens", 0) or 0)


def make_probe(cfg: TrialConfig, base: Base):
    """The forgetting probe for this model, prepared on the base model (None where no probe fits)."""
    lm_head = functools.partial(models.lm_head_weight, cfg.model, Path(cfg.cache_dir).expanduser())
    probe = probes.make(base.arch, base.tokenizer, base.data, cfg.train, base.device, lm_head=lm_head,
                        autocast=functools.partial(autocast, cfg, base.device))
    if probe is not None:
        probe.prepare(base.model)
    return probe


def setup(cfg: TrialConfig, phases: Phases | None = None, metrics: dict | None = None,
          with_probe: bool = True) -> Setup:
    """config -> load model and data -> the probe and the base model's score (cached) -> apply the method."""
    phases = phases or Phases()
    metrics = {} if metrics is None else metrics
    with phases("config"):
        method = methods.get(cfg.method.name)
        method_cfg = method.build_config(cfg.method.params)
    base = load_base(cfg, phases, metrics)
    probe, base_probe = None, None
    if with_probe:
        with phases("probe"):
            probe = make_probe(cfg, base)
            base_probe = _base_probe(cfg, base, probe)
    with phases("apply"):
        model = method.apply(base.model, method_cfg, base.arch).to(base.device)
        from bench.trackers import params

        metrics.update(params.count(model))
        if metrics["trainable_params"] == 0:
            raise ConfigError(f"`method` ({cfg.method.name!r}) leaves no trainable parameter in {cfg.model.name}")
    if probe is not None and models.is_quantized(model):
        with phases("probe_base"):  # the base this method trains on is the quantized one: "before" is scored on it
            base_probe = _quantized_base_probe(model, probe)
    if probe is not None:
        metrics["probe_before"] = base_probe["score"]
        metrics["probe_before_source"] = base_probe.get("source", "base model (cached)")
        if base_probe.get("error"):
            metrics["probe_error"] = base_probe["error"]
    return Setup(method, method_cfg, model, base.tokenizer, base.data, base.arch, base.model_kind, base.device, probe,
                 base_probe)


def _base_probe(cfg: TrialConfig, base: Base, probe) -> dict:
    """The base model's cached probe result ({"score", "items", "weights"}); score None (n/a) where the cache could
    not be filled or was filled for other probe items. Never computed here: that is shared work."""
    import json

    from bench.probes import base as base_scores

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


def _run(cfg: TrialConfig, phases: Phases, metrics: dict, progress: bool, items: dict, trial_dir=None) -> None:
    cache_dir = Path(cfg.cache_dir).expanduser()
    ready = setup(cfg, phases, metrics)
    method, method_cfg, model = ready.method, ready.method_cfg, ready.model
    tokenizer, data = ready.tokenizer, ready.data
    model_kind, device, probe = ready.model_kind, ready.device, ready.probe
    with phases("train"):
        from bench.tasks import curve as curves

        memory = training_memory(cfg, device)
        curve = curves.for_trial(cfg, data, tokenizer, model_kind, device, probe, metrics.get("probe_before"),
                                 outside_memory=memory.paused)  # checkpoints scored between steps stay out of it
        trainer, memory, speed = _train(cfg, method, method_cfg, model, tokenizer, data, device, progress,
                                        [curve] if curve else [], memory)
        if curve:
            metrics.update(curve.result())
            items["curve"], items["val_quality"] = curve.points, curve.val_items
        metrics.update(memory.result(model, trainer.optimizer))
        metrics.update(speed.result())
        add_mfu(metrics, device, cache_dir)
    measure(cfg, ready, model, phases, metrics, items, trial_dir)


def measure(cfg: TrialConfig, ready: Setup, model, phases: Phases, metrics: dict, items: dict, trial_dir=None) -> None:
    """What a trial measures on its trained model: quality, latency, checkpoint, merge, forgetting (a distributed
    trial: once, on rank 0, on the gathered model)."""
    method, tokenizer, data = ready.method, ready.tokenizer, ready.data
    model_kind, device, probe = ready.model_kind, ready.device, ready.probe
    with phases("evaluate"), autocast(cfg, device):
        quality = tasks.evaluate(data, model, tokenizer, model_kind, cfg.train.eval_batch_size, cfg.train.max_length,
                                 device)
        items["quality"] = quality.pop("items")
        if "generated" in quality:  # each item's generated text beside its score, so a generation score is auditable
            items["generated"] = quality.pop("generated")
        metrics.update(quality)
        metrics["quality_metric"] = cfg.task.primary_metric
        metrics["quality"] = quality[cfg.task.primary_metric]
    with phases("storage"):
        from bench.trackers import storage

        metrics["checkpoint_bytes"] = storage.checkpoint_bytes(model)
        metrics["can_merge"] = method.merges
        if cfg.train.save_checkpoint:  # what is kept is the adapter that serving loads, never the merged model
            if trial_dir is None:
                raise ConfigError("`train.save_checkpoint` (true): this run gave the trial no folder to keep it in")
            storage.save(model, Path(trial_dir) / "checkpoint")
    batch = _latency_batch(data, tokenizer, cfg, device)
    merged = None
    if method.merges:
        with phases("merge"):
            merged = _merge(cfg, model, batch, device, metrics)
    with phases("latency"), autocast(cfg, device):
        from bench.trackers import latency

        # unmerged and merged timed in one loop, their repeats interleaved: load from outside falls on both alike
        timed = {"": model} if merged is None else {"": model, "_merged": merged}
        metrics.update(latency.measure_interleaved(timed, batch, cfg.train.latency_repeats,
                                                   cfg.train.latency_warmup, device))
        if cfg.task.kind == "generation" and model_kind == "decoder":  # a generator also pays per decoded token
            from bench.tasks import generation
            from bench.trackers import decode

            request = generation.timing_batch(data, tokenizer, cfg.train.max_length, decode.DECODE_NEW_TOKENS, device)
            metrics.update(decode.measure_interleaved(generation.timing_decoder(tokenizer), timed, request,
                                                      cfg.train.latency_repeats, cfg.train.latency_warmup, device))
    if probe is not None:
        with phases("probe"):  # on the method as it serves: merged where the merge passed its check
            _forgetting(probe, ready.base_probe, model if merged is None else merged, metrics, items)


def _merge(cfg: TrialConfig, model, batch: dict, device, metrics: dict):
    """A merged copy of the model, checked (never failing the trial); None where the merge raised or its check
    failed: the merged figures are then n/a, with the reason in `merge_error`."""
    from bench.trackers.merge import merge_checked

    merged, check = merge_checked(model, batch, compute_dtype(cfg, device), lambda: autocast(cfg, device))
    metrics.update(check)
    if check.get("merge_ok") is not True:
        metrics.update(latency_ms_p50_merged=None, latency_ms_p90_merged=None)
        return None
    return merged


def _forgetting(probe, base_probe: dict, model, metrics: dict, items: dict) -> None:
    """The probe on the tuned model, as it serves; forgetting against the base with its interval, and both sides'
    per-item scores (the same items, so methods compare paired)."""
    from bench.probes import BodyNotCalled, forgetting

    try:
        after = probe.measure(model)
    except BodyNotCalled as error:  # the probe cannot see this model as it serves: n/a, never a made-up 0
        metrics.update({"probe_after": None, "forgetting_probe": probe.name, "forgetting": None,
                        "probe_error": str(error)})
        return
    if base_probe.get("score") is None:
        metrics.update({"probe_after": after.value, "forgetting_probe": probe.name, "forgetting": None,
                        "n_probe": len(after.items)})
    else:
        metrics.update(forgetting.metrics(probe, base_probe, after))
        items["probe_before"] = base_probe.get("items") or []
    items["probe_after"] = after.items
    if after.weights:
        items["probe_weights"] = after.weights


def training_args(cfg: TrialConfig, device, output_dir: str, progress: bool):
    """The Trainer's arguments for a trial (also used by benchmarks/ to time the same loop bare)."""
    from transformers import TrainingArguments

    from bench.distributed.training import trainer_arguments

    args = dict(
        output_dir=output_dir, max_steps=cfg.train.max_steps, per_device_train_batch_size=cfg.train.batch_size,
        learning_rate=cfg.learning_rate, weight_decay=cfg.train.weight_decay,
        max_grad_norm=cfg.train.max_grad_norm or 0.0, warmup_steps=cfg.train.lr_warmup_steps,
        lr_scheduler_type=cfg.train.lr_scheduler, logging_steps=cfg.train.log_every, save_strategy="no",
        eval_strategy="no", report_to=[], seed=cfg.seed, disable_tqdm=not progress, use_cpu=device.type == "cpu",
        dataloader_num_workers=0, remove_unused_columns=False, bf16=precision(cfg, device) == "bf16",
        fp16=precision(cfg, device) == "fp16",
        logging_nan_inf_filter=False,  # the default hides NaN/inf losses from the logs; a NaN must fail the trial
    )
    return TrainingArguments(**{**args, **trainer_arguments(cfg, device)})  # DDP/FSDP: the batch split, the backend


def training_memory(cfg: TrialConfig, device):
    """The training phase's memory tracker; on CPU its peak is read over the warm-up steps (bench.trackers.memory)."""
    from bench.trackers.memory import MemoryTracker

    return MemoryTracker(device, window_steps=cfg.train.warmup_steps)


def untimed_steps(cfg: TrialConfig, device, memory=None) -> int:
    """Training steps the speed figures leave out: the warm-up steps, the FLOP-counted first step, and on CPU the
    memory tracker's window, whose exact malloc policy slowed a minilm-l6 step by 40% (bench.trackers.memory)."""
    memory = memory or training_memory(cfg, device)
    window = memory.untimed_steps  # CPU: the memory window; GPU (no window, the peak covers every step): warm-up
    return max(cfg.train.warmup_steps, window, 1 if cfg.train.measure_flops else 0)


def check_timed_steps(cfg: TrialConfig, device) -> None:
    """At least one training step is timed (refused before anything loads, naming the keys)."""
    untimed = untimed_steps(cfg, device)
    if cfg.train.max_steps <= untimed:
        raise ConfigError(
            f"`train.max_steps` ({cfg.train.max_steps}) leaves no timed step: the first {untimed} are left out of the "
            f"speed figures (`train.warmup_steps` ({cfg.train.warmup_steps}), the FLOP-counted step with "
            f"`train.measure_flops`, on CPU the memory window of at least 2 steps): use train.max_steps={untimed + 1} "
            "or more")


def _train(cfg, method, method_cfg, model, tokenizer, data, device, progress, listeners=(), memory=None):
    """Train with transformers' Trainer; the memory tracker (`training_memory` unless given) wraps it, the
    throughput tracker listens to it."""
    from bench.distributed.memory import MemoryFromTrainBegin
    from bench.distributed.training import trainer_class
    from bench.trackers.throughput import CountingCollator, ThroughputCallback

    memory = memory or training_memory(cfg, device)
    # the memory window's batches padded to the longest example, so its peak is the longest batch's
    counter = CountingCollator(memory.pad_window(tasks.collator(cfg.task.kind, tokenizer), data.train, tokenizer))
    speed = ThroughputCallback(counter, untimed_steps(cfg, device, memory), device, cfg.train.measure_flops)
    callbacks = [speed] + (method.callbacks(model, method_cfg, cfg.train.max_steps) if method.callbacks else [])
    callbacks += list(listeners)  # after speed: what they do between steps stays outside the timed steps
    callbacks += memory.callbacks()
    if cfg.train.distributed != "none":  # tracked from the first step, on the model as sharded (or wrapped)
        callbacks.insert(0, MemoryFromTrainBegin(memory))
    with tempfile.TemporaryDirectory(prefix="peft-bench-trainer-") as output_dir:
        args = training_args(cfg, device, output_dir, progress)
        trainer = trainer_class(cfg, device)(model=model, args=args, train_dataset=data.train, data_collator=counter,
                                             callbacks=callbacks)
        from bench.sweep.progress import attach

        attach(trainer, f"{cfg.method.name} on {cfg.model.name}", show_bar=progress, verbose=cfg.verbose)
        with nullcontext() if cfg.train.distributed != "none" else memory:
            trainer.train()
    return trainer, memory, speed


def add_mfu(metrics: dict, device, cache_dir: Path, processes: int = 1) -> None:
    """Model FLOPs utilisation: measured training FLOP/s over the machine's peak (kept, never timed by a trial).
    n/a where the only peak kept was timed under load: it reads low and would inflate mfu, past 1 even.
    A distributed trial: the group's FLOP/s over one device's peak times the processes (one device each)."""
    from bench.trackers.peak_flops import peak

    metrics.update(peak(device, cache_dir, metrics.get("precision") or "fp32"))  # the peak of the precision trained in
    rate, peak_flops = metrics.get("train_flops_per_s"), metrics["peak_flops_per_s"]
    trusted = peak_flops and not metrics.get("peak_flops_under_load")
    metrics["mfu"] = rate / (peak_flops * processes) if rate and trusted else None


_add_mfu = add_mfu  # the name tests and benchmarks know


def _latency_batch(data, tokenizer, cfg, device) -> dict:
    """One fixed-size batch: the first held-out texts, padded to train.max_length."""
    texts = [r["text"] for r in data.test_rows[: cfg.train.latency_batch_size]]
    texts += texts[:1] * (cfg.train.latency_batch_size - len(texts))
    batch = tokenizer(texts, truncation=True, max_length=cfg.train.max_length, padding="max_length",
                      return_tensors="pt")
    return {k: v.to(device) for k, v in batch.items()}
