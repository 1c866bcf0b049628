"""Work that the trials of a machine and model share, done once before them in a process of its own: the machine's
peak FLOP/s (timed while the machine is idle enough) and the base model's probe score. No trial pays for it, in
time or in memory, whichever trial comes first.

A sweep calls fill_shared_caches(cfg) before it starts each trial; a single run calls it first thing (bench.launch
.trial). Both are file reads when the caches are warm; when one is cold, a fresh interpreter fills it (a fresh one,
so the calling process, which may fork trials, runs no torch op) while a file lock keeps parallel trials from filling
it twice.

    python -m bench.launch.shared_child TRIAL_CONFIG_JSON     (what fill_shared_caches runs when a cache is cold)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import torch

from bench import models, tasks
from bench.common.files import lock
from bench.config import TrialConfig, Unsupported
from bench.probes import base
from bench.trackers import peak_flops

CHILD_TIMEOUT_S = 3600
# The child's exit status for bad input: the trial checks the same input and reports it in one line, so the
# child stays silent rather than print a traceback before that line.
BAD_INPUT_EXIT = 3


def trial_threads(cfg: TrialConfig) -> int:
    """The threads each process of the trial computes with: train.threads, else a distributed trial's rank its share
    of the cores (bench.launch.ranks gives each rank that many), else torch's default."""
    if cfg.train.threads:
        return cfg.train.threads
    if cfg.train.distributed != "none":
        return max(1, (os.cpu_count() or 1) // cfg.train.nproc)
    return torch.get_num_threads()


def trial_dtype(cfg: TrialConfig) -> str:
    """The dtype of a CPU trial's matmuls, whose peak its mfu divides by."""
    return peak_flops.cpu_dtype(cfg.train.precision)


def _cold(cfg: TrialConfig) -> dict:
    """Which caches a trial of cfg would find empty: {"peak": bool, "probe": bool, "probe_lock": path or None}."""
    cache_dir = Path(cfg.cache_dir).expanduser()
    peak = cfg.train.device != "cuda" and peak_flops.needs_timing(cache_dir, trial_threads(cfg), trial_dtype(cfg))
    kind = models.known_kind(cfg.model, cache_dir)
    if kind is None:  # not converted or built yet: cold, and locked per model until its probe key is known
        return {"peak": peak, "probe": True, "probe_lock": base.model_lock_path(cfg)}
    where = base.path(cfg, kind)
    try:
        models.check_task_fits(kind, cfg.task.kind, cfg.model, cfg.task.name)
    except Unsupported:  # the trial will be skipped: nothing to prepare for it
        where = None
    return {"peak": peak, "probe": where is not None and base.read(cfg, kind) is None, "probe_lock": where}


def fill_shared_caches(cfg: TrialConfig) -> dict:
    """Fill the caches the trial will read, in a child process where one is cold; {"seconds_prepare": s} when a
    child ran, {} when all was warm. Raises only ConfigError, for data the trial could not read either; a cache the
    child could not fill is the trial's n/a."""
    cold = _cold(cfg)
    if not (cold["peak"] or cold["probe"]):
        return {}
    # Bad data or a missing model package is the trial's to report (ConfigError, one line): checked here, before a
    # child starts to load a model for it.
    models.check_installed(cfg.model)
    tasks.raw_splits(cfg.task, Path(cfg.cache_dir).expanduser())
    started = time.perf_counter()
    with ExitStack() as locks:  # each cold cache's own lock, always peak first: no deadlock between two trials
        if cold["peak"]:
            kept = peak_flops.cache_path(Path(cfg.cache_dir).expanduser(), trial_threads(cfg), trial_dtype(cfg))
            locks.enter_context(lock(kept))
        if cold["probe"]:
            locks.enter_context(lock(cold["probe_lock"]))
        again = _cold(cfg)  # filled by another trial while this one waited?
        if again["peak"] or again["probe"]:
            # The child must not take the lock this process holds (it would wait for its own parent).
            _run_child(cfg, {"peak": again["peak"], "probe": again["probe"],
                             "probe_locked": again["probe_lock"] == cold["probe_lock"] != base.model_lock_path(cfg)})
    return {"seconds_prepare": round(time.perf_counter() - started, 3)}


def _run_child(cfg: TrialConfig, cold: dict) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="peft-bench-prepare-", delete=False) as handle:
        json.dump({"config": cfg.to_dict(), "cold": cold}, handle)
    try:
        command = [sys.executable, "-m", "bench.launch.shared_child", handle.name]
        done = subprocess.run(command, timeout=CHILD_TIMEOUT_S, check=False)
        if done.returncode not in (0, BAD_INPUT_EXIT):
            print(f"peft-bench: preparing the shared caches failed (exit {done.returncode}); the trial records n/a "
                  "where it needs them", file=sys.stderr, flush=True)
    except (OSError, subprocess.SubprocessError) as error:
        print(f"peft-bench: preparing the shared caches failed: {error}", file=sys.stderr, flush=True)
    finally:
        os.unlink(handle.name)
