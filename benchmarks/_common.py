"""Shared set-up for the benchmarks: a trial's model, method and data, built by the harness itself."""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

from transformers import Trainer, TrainerCallback

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import config, methods, tasks, trial  # noqa: E402
from bench.trackers.throughput import CountingCollator, ThroughputCallback  # noqa: E402

config.register(methods.registry())  # the method schemas composing needs

# Per-model sizes that keep a repetition short on 2 CPU cores; batches are full (articles exceed max_length).
SIZES = {
    "minilm-l6": ["train.batch_size=16", "train.max_length=128"],
    "smollm2-135m": ["train.batch_size=4", "train.max_length=128"],
    "tiny-bert": ["train.batch_size=16", "train.max_length=128"],
}


def configure(model: str, method: str, steps: int, warmup: int, device: str, extra=()):
    overrides = [f"model={model}", f"method={method}", f"train.max_steps={steps}", f"train.warmup_steps={warmup}",
                 f"train.device={device}", "train.log_every=1000", "task.max_train_samples=null",
                 *SIZES.get(model, []), *extra]
    if device == "cuda":
        overrides.append("train.precision=bf16")
    return config.compose(*overrides)


def build(cfg):
    """The trial's model with the method applied, its data and device (no probe: not part of the loop)."""
    return trial.setup(cfg, with_probe=False)


def median(values) -> float:
    return statistics.median(values)


def spread(values) -> str:
    return f"median {statistics.median(values):,.1f} (min {min(values):,.1f}, max {max(values):,.1f}, n={len(values)})"


class StepClock(TrainerCallback):
    """The least a timing needs: a clock read at each step's start and end (the wall clock unless given, e.g.
    time.process_time for this process's CPU seconds, or any rising count), summed over the steps after the warm-up."""

    def __init__(self, warmup_steps: int, clock=time.perf_counter):
        self.warmup_steps, self.clock, self.total, self.index = warmup_steps, clock, 0.0, 0

    def on_step_begin(self, *args, **kwargs):
        self.started = self.clock()

    def on_step_end(self, *args, **kwargs):
        if self.index >= self.warmup_steps:
            self.total += self.clock() - self.started
        self.index += 1


def timed_seconds(cfg, ready, instrumented: bool) -> float:
    """Seconds of the timed steps (after warm-up) of the Trainer loop, bare or with every tracker a trial uses
    (throughput listener with its FLOP-counted step, token-counting collator, memory tracker and its CPU window);
    every run sees the same batches (same seed, same sampler)."""
    collator = tasks.collator(cfg.task.kind, ready.tokenizer)
    clock = StepClock(trial.untimed_steps(cfg, ready.device))  # the steps a trial leaves out of its speed figures
    callbacks = [clock]
    memory = trial.training_memory(cfg, ready.device)  # as a trial tracks it
    if instrumented:
        collator = CountingCollator(collator)
        callbacks.insert(0, ThroughputCallback(collator, cfg.train.warmup_steps, ready.device, measure_flops=True))
        callbacks += memory.callbacks()
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = Trainer(model=ready.model, args=trial.training_args(cfg, ready.device, output_dir, progress=False),
                          train_dataset=ready.data.train, data_collator=collator, callbacks=callbacks)
        with memory if instrumented else contextlib.nullcontext():
            trainer.train()
    return clock.total


def arguments(doc: str, steps: int, warmup: int) -> argparse.ArgumentParser:
    """The options of a benchmark that times one model's training for some methods, side by side."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--methods", nargs="+", default=["lora", "full"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--warmup", type=int, default=warmup)
    return parser
