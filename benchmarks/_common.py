"""Shared set-up for the benchmarks: a trial's model, method and data, built by the harness itself."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import config, trial  # noqa: E402

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
