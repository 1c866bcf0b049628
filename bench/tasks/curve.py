"""Learning versus forgetting along training: validation quality and the forgetting probe every `train.eval_every`
steps and at the last step, from a TrainerCallback (the training loop itself is not touched).

    peft-bench train.eval_every=20                   # a checkpoint at steps 20, 40, 60 of the default 60 steps
    peft-bench train.eval_every=10 task.max_val_samples=100

Each checkpoint scores the validation split, never the test split, so the last one (`val_quality` in the record)
is what a learning-rate search chooses on. The callback must come after the throughput callback in the Trainer's
list: its evaluation then runs after that callback has stopped the step's clock, outside every timed step, so
training speed does not include it; the memory peak leaves it out too (the tracker is paused while it runs).
Evaluation does not touch the random state training uses (no dropout in eval mode, greedy generation), so a trial
trains the same with or without checkpoints. The last checkpoint is at the last step, on the model the trial then
measures: its probe score (`last_probe`) is the trial's, so the probe does not run twice on the same weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path

from transformers import TrainerCallback

from bench import probes, tasks


class CurveCallback(TrainerCallback):
    """`points`: one dict per checkpoint (see `point`); `val_items`: the last checkpoint's per-item scores."""

    def __init__(self, every_steps: int, evaluate, primary_metric: str, probe=None, probe_before: float | None = None,
                 outside_memory=contextlib.nullcontext):
        self.every_steps = every_steps
        self.evaluate = evaluate  # model -> tasks.evaluate's dict for the validation rows
        self.primary_metric = primary_metric
        self.probe, self.probe_before = probe, probe_before
        self.points: list[dict] = []
        self.val_items: list = []
        self.last_probe = None  # the last checkpoint's ProbeScore
        self.outside_memory = outside_memory  # a context (the memory tracker's `paused`) its scoring runs in

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every_steps == 0 or state.global_step >= state.max_steps:
            with self.outside_memory():  # the training peak is training's: scoring a checkpoint stays out of it
                self.points.append(self.point(model, state.global_step, _last_loss(state.log_history)))
            model.train()  # evaluation left it in eval mode; the Trainer sets train mode again too, but not all loops

    def point(self, model, step: int, loss: float | None) -> dict:
        """{step, train_loss, val_quality, val_quality_ci_low/high, n_val, probe, forgetting, seconds}."""
        started = time.perf_counter()
        scored = self.evaluate(model)
        self.val_items = scored.get("items", [])
        self.last_probe = self.probe.measure(model) if self.probe is not None else None
        probe_score = self.last_probe.value if self.last_probe is not None else None
        forgetting = (probes.relative_loss(self.probe_before, probe_score, self.probe.higher_is_better)
                      if self.probe is not None else None)
        return {
            "step": step, "train_loss": loss, "val_quality": scored[self.primary_metric],
            "val_quality_ci_low": scored.get("quality_ci_low"), "val_quality_ci_high": scored.get("quality_ci_high"),
            "n_val": scored.get("n_eval"), "probe": probe_score, "forgetting": forgetting,
            "seconds": round(time.perf_counter() - started, 3),
        }

    def result(self) -> dict:
        """Record metrics: the last checkpoint's validation quality (what a search selects on), how many
        checkpoints, and the seconds they took (inside the train phase's wall time, outside its timed steps)."""
        if not self.points:
            return {}
        last = self.points[-1]
        return {
            "val_quality": last["val_quality"], "val_quality_ci_low": last["val_quality_ci_low"],
            "val_quality_ci_high": last["val_quality_ci_high"], "n_val": last["n_val"],
            "curve_points": len(self.points), "curve_seconds": round(sum(p["seconds"] for p in self.points), 3),
        }


def _last_loss(log_history: list[dict]) -> float | None:
    return next((entry["loss"] for entry in reversed(log_history) if "loss" in entry), None)


def validation_rows(task_cfg, cache_dir: Path) -> list[dict]:
    """The task's validation rows (the split cache makes this a file read), cut to `task.max_val_samples`."""
    # never the test split: a source without a validation split gets one carved from train (tasks.raw_splits)
    return tasks.raw_splits(task_cfg, cache_dir)["validation"][: task_cfg.max_val_samples]


def for_trial(cfg, data, tokenizer, model_kind: str, device, probe=None, probe_before: float | None = None,
              outside_memory=contextlib.nullcontext):
    """The trial's CurveCallback, or None when `train.eval_every` is off. Checkpoints are scored inside
    `outside_memory()`: the trial passes its memory tracker's `paused`, so scoring stays out of the training peak."""
    if not cfg.train.eval_every:
        return None
    validation = dataclasses.replace(data, test_rows=validation_rows(cfg.task, Path(cfg.cache_dir).expanduser()))

    def evaluate(model) -> dict:
        return tasks.evaluate(validation, model, tokenizer, model_kind, cfg.train.eval_batch_size,
                              cfg.train.max_length, device)

    return CurveCallback(cfg.train.eval_every, evaluate, cfg.task.primary_metric, probe, probe_before, outside_memory)
