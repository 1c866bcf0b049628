"""Training a trial's model with transformers' Trainer: the memory tracker wraps it, the throughput tracker and every
registered tracker (bench.trackers.protocol) listen to it; what distributed training adds (the Trainer class and
its arguments, the memory tracker started once the model is sharded) comes from bench.distributed."""

from __future__ import annotations

import tempfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from transformers import TrainingArguments

from bench import methods, tasks
from bench.config import ConfigError, TrialConfig, Unsupported
from bench.distributed.memory import MemoryFromTrainBegin
from bench.distributed.training import trainer_arguments, trainer_class
from bench.trackers import peak_flops, protocol
from bench.trackers.memory import MemoryTracker
from bench.trackers.throughput import CountingCollator, ThroughputCallback
from bench.trial.load import Setup, precision
from bench.trial.progress import attach


@dataclass
class Trained:
    """The Trainer after training, and the trackers that listened (their figures are read from them)."""

    trainer: object
    memory: MemoryTracker
    speed: ThroughputCallback
    trackers: list

    def figures(self, model) -> dict:
        """Memory, speed and every registered tracker's columns."""
        return {**self.memory.result(model, self.trainer.optimizer), **self.speed.result(),
                **protocol.figures(self.trackers)}


def training_args(cfg: TrialConfig, device, output_dir: str, progress: bool):
    """The Trainer's arguments for a trial (also used by benchmarks/ to time the same loop bare)."""
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
    return MemoryTracker(device, window_steps=cfg.train.warmup_steps)


def untimed_steps(cfg: TrialConfig, device, memory=None) -> int:
    """Training steps the speed figures leave out: the warm-up steps, the FLOP-counted first step, and on CPU the
    memory tracker's window, whose exact malloc policy slowed a minilm-l6 step by 40%, with the step after it that
    grows the heap back (bench.trackers.memory)."""
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
            f"`train.measure_flops`, on CPU the memory window of at least 2 steps and the step after it): use "
            f"train.max_steps={untimed + 1} "
            "or more")


def train(cfg: TrialConfig, ready: Setup, progress: bool, listeners=(), memory=None) -> Trained:
    """Train with transformers' Trainer; the memory tracker (`training_memory` unless given) wraps it, the
    throughput tracker, the registered trackers and `listeners` listen to it."""
    memory = memory or training_memory(cfg, ready.device)
    # the memory window's batches padded to the longest example, so its peak is the longest batch's
    collator = memory.pad_window(tasks.collator(cfg.task.kind, ready.tokenizer), ready.data.train, ready.tokenizer)
    counter = CountingCollator(collator)
    speed = ThroughputCallback(counter, untimed_steps(cfg, ready.device, memory), ready.device,
                               cfg.train.measure_flops)
    trackers = protocol.start(cfg, ready.device)
    with tempfile.TemporaryDirectory(prefix="peft-bench-trainer-") as output_dir:
        trainer = trainer_class(cfg, ready.device)(
            model=ready.model, args=training_args(cfg, ready.device, output_dir, progress),
            train_dataset=ready.data.train, data_collator=counter,
            callbacks=_callbacks(cfg, ready, speed, [*listeners, *trackers], memory),
            optimizers=(own_optimizer(cfg, ready), None))  # None: the Trainer's schedule, over either optimizer
        attach(trainer, f"{cfg.method.name} on {cfg.model.name}", show_bar=progress, verbose=cfg.verbose)
        with nullcontext() if cfg.train.distributed != "none" else memory:
            trainer.train()
    return Trained(trainer, memory, speed, trackers)


def own_optimizer(cfg: TrialConfig, ready: Setup):
    """The optimizer a method brings (LoRA-FA's, LoRA+'s: Method.optimizer), built on the model with the method
    applied; None for the Trainer's own AdamW. The Trainer's warm-up and decay schedule scales each of its groups."""
    method = ready.method
    if method.optimizer is None:
        return None
    return method.optimizer(ready.model, ready.method_cfg, cfg.learning_rate, cfg.train.weight_decay)


def check_shardable(cfg: TrialConfig) -> None:
    """Refused before anything loads: the Trainer cannot shard an optimizer a method brings (FSDP)."""
    if cfg.train.distributed == "fsdp" and methods.get(cfg.method.name).optimizer is not None:
        raise Unsupported(f"`method` ({cfg.method.name}) brings its own optimizer, which the Trainer cannot shard "
                          "(FSDP)")


def _callbacks(cfg: TrialConfig, ready: Setup, speed, listeners: list, memory) -> list:
    """Speed first, then the method's own, then the listeners (what they do between steps stays outside the timed
    steps), then memory's; a distributed rank tracks memory from the first step, on the model as sharded."""
    method = ready.method
    callbacks = [speed] + (method.callbacks(ready.model, ready.method_cfg, cfg.train.max_steps)
                           if method.callbacks else [])
    for listener in listeners:
        callbacks += listener.callbacks() if isinstance(listener, protocol.Tracker) else [listener]
    callbacks += memory.callbacks()
    if cfg.train.distributed != "none":
        callbacks.insert(0, MemoryFromTrainBegin(memory))
    return callbacks


def add_mfu(metrics: dict, device, cache_dir: Path, processes: int = 1) -> None:
    """Model FLOPs utilisation: measured training FLOP/s over the machine's peak (kept, never timed by a trial).
    n/a where the only peak kept was timed under load: it reads low and would inflate mfu, past 1 even.
    A distributed trial: the group's FLOP/s over one device's peak times the processes (one device each)."""
    metrics.update(peak_flops.peak(device, cache_dir, metrics.get("precision") or "fp32"))  # the trained precision's
    rate, peak = metrics.get("train_flops_per_s"), metrics["peak_flops_per_s"]
    trusted = peak and not metrics.get("peak_flops_under_load")
    metrics["mfu"] = rate / (peak * processes) if rate and trusted else None
