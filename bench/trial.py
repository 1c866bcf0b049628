"""One trial: load -> apply method -> train -> evaluate -> latency, storage -> forgetting probe -> record.

Trackers wrap or listen to each phase; the phase in progress is kept so a failure records where it happened.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import methods, models, probes, tasks
from bench.config import ConfigError, TrialConfig, Unsupported
from bench.results.record import TrialRecord, provenance

MERGE_ATOL = 1e-3  # merged and unmerged logits agree to float32 rounding of the folded weights


class Phases:
    """The phase in progress (for the failure record) and the wall seconds spent in each (for the sweep's
    split of useful work against fixed per-trial cost)."""

    def __init__(self):
        self.current = "config"
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        self.current = name
        started = time.perf_counter()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


def identity(cfg: TrialConfig) -> dict:
    try:
        family = methods.get(cfg.method.name).family
    except ConfigError:
        family = None
    return {"method": cfg.method.name, "family": family, "model": cfg.model.name, "task": cfg.task.name, "seed": cfg.seed}


def run(cfg: TrialConfig, progress: bool = True) -> TrialRecord:
    """Run the trial; never raises for a trial failure: the record says ok, failed (with phase) or skipped."""
    phases = Phases()
    metrics: dict = {}
    record = TrialRecord(status="ok", config={**cfg.to_dict(), "learning_rate": cfg.learning_rate},
                         key=cfg.key(), identity=identity(cfg), metrics=metrics)
    try:
        _run(cfg, phases, metrics, progress)
    except Unsupported as error:
        record.status, record.error = "skipped", _error(error, "config")
    except ConfigError as error:
        record.status, record.error = "failed", _error(error, "config")
    except Exception as error:  # any failure ends this trial only; the sweep goes on
        record.status, record.error = "failed", _error(error, phases.current)
        _add_oom_memory(error, metrics)
    metrics.update({f"seconds_{name}": round(value, 4) for name, value in phases.seconds.items()})
    record.provenance = provenance(cfg.seed, metrics.get("device", "cpu"))
    return record


def _error(error: BaseException, phase: str) -> dict:
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return {"type": type(error).__name__, "message": message, "phase": phase,
            "traceback": "".join(traceback.format_exception(error))[-4000:]}


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
    return torch.device("cuda" if wanted == "auto" and torch.cuda.is_available() else ("cpu" if wanted == "auto" else wanted))


def _dtype(cfg: TrialConfig, device):
    import torch

    precision = cfg.train.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


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


def setup(cfg: TrialConfig, phases: Phases | None = None, metrics: dict | None = None, with_probe: bool = True) -> Setup:
    """config -> load model and data -> score the base model's probe -> apply the method."""
    import datasets
    import torch
    import transformers

    phases = phases or Phases()
    metrics = {} if metrics is None else metrics
    transformers.logging.set_verbosity_error()  # load reports and progress bars would bury the trial's own output
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    cache_dir = Path(cfg.cache_dir).expanduser()
    with phases("config"):
        method = methods.get(cfg.method.name)
        method_cfg = method.build_config(cfg.method.params)
        model_kind = models.kind(models.load_config(cfg.model, cache_dir))
        models.check_task_fits(model_kind, cfg.task.kind, cfg.model, cfg.task.name)
        device = _device(cfg)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        metrics["device"] = str(device)
        metrics["torch_threads"] = torch.get_num_threads()
        transformers.set_seed(cfg.seed)
    with phases("load"):
        splits = tasks.raw_splits(cfg.task, cache_dir)  # checks dataset columns before the model loads
        num_labels = len(tasks.label_names(cfg.task, splits)) or None
        model, tokenizer = models.load(cfg.model, cfg.task.kind, num_labels, cache_dir, dtype=_dtype(cfg, device))
        data = tasks.load(cfg.task, splits, tokenizer, model_kind, cfg.train, cache_dir)
        model.to(device)
        from bench.models.arch import inspect

        arch = inspect(model, model_kind, cfg.task.kind, tokenizer)
    probe = None
    if with_probe:
        with phases("probe"):
            probe = probes.make(arch, tokenizer, data, cfg.train, device)
            if probe is not None:
                if cfg.task.kind == "classification" and hasattr(probe, "keep_lm_head"):
                    probe.keep_lm_head(model)
                metrics["probe_before"] = _cached_base_score(probe, model, cfg, cache_dir)
    with phases("apply"):
        model = method.apply(model, method_cfg, arch).to(device)
        from bench.trackers import params

        metrics.update(params.count(model))
        if metrics["trainable_params"] == 0:
            raise ConfigError(f"`method` ({cfg.method.name!r}) leaves no trainable parameter in {cfg.model.name}")
    return Setup(method, method_cfg, model, tokenizer, data, arch, model_kind, device, probe)


def _run(cfg: TrialConfig, phases: Phases, metrics: dict, progress: bool) -> None:
    cache_dir = Path(cfg.cache_dir).expanduser()
    ready = setup(cfg, phases, metrics)
    method, method_cfg, model, tokenizer, data = ready.method, ready.method_cfg, ready.model, ready.tokenizer, ready.data
    model_kind, device, probe = ready.model_kind, ready.device, ready.probe
    with phases("train"):
        trainer, memory, speed = _train(cfg, method, method_cfg, model, tokenizer, data, device, progress)
        metrics.update(memory.result(model, trainer.optimizer))
        metrics.update(speed.result())
        _add_mfu(metrics, device, cache_dir)
    with phases("evaluate"):
        quality = tasks.evaluate(data, model, tokenizer, model_kind, cfg.train.eval_batch_size, cfg.train.max_length, device)
        metrics.update(quality)
        metrics["quality_metric"] = cfg.task.primary_metric
        metrics["quality"] = quality[cfg.task.primary_metric]
    with phases("latency"):
        from bench.trackers import latency, storage

        batch = _latency_batch(data, tokenizer, cfg, device)
        metrics.update(latency.measure(model, batch, cfg.train.latency_repeats, cfg.train.latency_warmup, device))
    with phases("storage"):
        metrics["checkpoint_bytes"] = storage.checkpoint_bytes(model)
        metrics["can_merge"] = method.merges
    if method.merges:
        with phases("merge"):
            model = _merge_checked(model, batch, metrics)
            merged = latency.measure(model, batch, cfg.train.latency_repeats, cfg.train.latency_warmup, device)
            metrics["latency_ms_p50_merged"] = merged["latency_ms_p50"]
            metrics["latency_ms_p90_merged"] = merged["latency_ms_p90"]
    if probe is not None:
        with phases("probe"):
            metrics["probe_after"] = probe.score(model)
            metrics["forgetting_probe"] = probe.name
            metrics["forgetting"] = probes.relative_loss(metrics["probe_before"], metrics["probe_after"], probe.higher_is_better)


def training_args(cfg: TrialConfig, device, output_dir: str, progress: bool):
    """The Trainer's arguments for a trial (also used by benchmarks/ to time the same loop bare)."""
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=output_dir, max_steps=cfg.train.max_steps, per_device_train_batch_size=cfg.train.batch_size,
        learning_rate=cfg.learning_rate, weight_decay=cfg.train.weight_decay,
        max_grad_norm=cfg.train.max_grad_norm or 0.0, warmup_steps=cfg.train.lr_warmup_steps,
        lr_scheduler_type=cfg.train.lr_scheduler, logging_steps=cfg.train.log_every, save_strategy="no",
        eval_strategy="no", report_to=[], seed=cfg.seed, disable_tqdm=not progress, use_cpu=device.type == "cpu",
        dataloader_num_workers=0, remove_unused_columns=False, fp16=cfg.train.precision == "fp16",
        logging_nan_inf_filter=False,  # the default hides NaN/inf losses from the logs; a NaN must fail the trial
    )


def _train(cfg, method, method_cfg, model, tokenizer, data, device, progress):
    """Train with transformers' Trainer; the memory tracker wraps it, the throughput tracker listens to it."""
    from transformers import Trainer

    from bench.trackers.memory import MemoryTracker
    from bench.trackers.throughput import CountingCollator, ThroughputCallback

    counter = CountingCollator(tasks.collator(cfg.task.kind, tokenizer))
    speed = ThroughputCallback(counter, cfg.train.warmup_steps, device, cfg.train.measure_flops)
    callbacks = [speed] + (method.callbacks(model, method_cfg, cfg.train.max_steps) if method.callbacks else [])
    with tempfile.TemporaryDirectory(prefix="peft-bench-trainer-") as output_dir:
        args = training_args(cfg, device, output_dir, progress)
        trainer = Trainer(model=model, args=args, train_dataset=data.train, data_collator=counter, callbacks=callbacks)
        with MemoryTracker(device) as memory:
            trainer.train()
    return trainer, memory, speed


def _add_mfu(metrics: dict, device, cache_dir: Path) -> None:
    """Model FLOPs utilisation: measured training FLOP/s over the machine's peak."""
    from bench.trackers.peak_flops import peak

    peak_flops, source = peak(device, cache_dir)
    metrics["peak_flops_per_s"], metrics["peak_flops_source"] = peak_flops, source
    rate = metrics.get("train_flops_per_s")
    metrics["mfu"] = rate / peak_flops if rate and peak_flops else None


def _latency_batch(data, tokenizer, cfg, device) -> dict:
    """One fixed-size batch: the first held-out texts, padded to train.max_length."""
    texts = [r["text"] for r in data.test_rows[: cfg.train.latency_batch_size]]
    texts += texts[:1] * (cfg.train.latency_batch_size - len(texts))
    batch = tokenizer(texts, truncation=True, max_length=cfg.train.max_length, padding="max_length", return_tensors="pt")
    return {k: v.to(device) for k, v in batch.items()}


def _merge_checked(model, batch, metrics):
    """Fold the update into the base weights and check the merged model gives the same outputs."""
    import torch

    with torch.inference_mode():
        before = model(**batch).logits.float()
        merged = model.merge_and_unload()
        after = merged(**batch).logits.float()
    difference = float((before - after).abs().max())
    metrics["merge_max_abs_diff"] = difference
    if difference > MERGE_ATOL * max(1.0, float(before.abs().max())):
        raise RuntimeError(f"merged outputs differ from unmerged ones by {difference:.3g}")
    return merged


def _cached_base_score(probe, model, cfg: TrialConfig, cache_dir: Path) -> float:
    """The base model's probe score, computed once per model, probe and probe size, then read from the cache."""
    identity = json.dumps([cfg.model.name, models.source(cfg.model, cache_dir), cfg.task.name if probe.name != "perplexity" else "",
                           cfg.task.kind, probe.name, cfg.train.probe_samples, cfg.train.max_length, str(model.dtype)])
    path = cache_dir / "probes" / (hashlib.sha256(identity.encode()).hexdigest()[:16] + ".json")
    try:
        return json.loads(path.read_text())["score"]
    except (OSError, ValueError, KeyError):
        score = probe.score(model)
        from bench.results.record import write_atomic

        write_atomic(path, {"identity": identity, "score": score})
        return score
