"""The base model's probe score and per-item scores, computed once per model and probe configuration, before the
trials that need it and in a process of its own (bench.launch.shared), and kept in cache_dir/probes/.

A trial only reads it: computing it inside whichever trial finds the cache empty made that trial's memory baseline,
peak and probe time carry another model's work. The key holds everything that changes the score without being in
the model: probe size and length, the Python version (the probe text ships with it), the task and its split
fractions (retrieval pairs come from the test split), device and precision, and the machine (what `device=auto`
resolves to). The stored probe identity (texts, pairs) is checked again by the trial that reads it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
from pathlib import Path

from bench.common.files import read_json, write_atomic
from bench.config import TrialConfig

CACHE_VERSION = 3  # bump when what a cached score means changes (1: whole-file chunks, body read around prompts;
# 2: probe windows without the BOS the tokenizer adds)
PROBE_OF_KIND = {"decoder": "perplexity", "encoder": "retrieval_recall@1"}


def identity(cfg: TrialConfig, model_kind: str) -> list | None:
    """What the cached base score depends on, from the config alone (no model loaded); None: no probe fits."""
    probe = PROBE_OF_KIND.get(model_kind)
    if probe is None:
        return None
    task = cfg.task
    # Perplexity reads general text through the base LM head: the task (and its head) plays no part.
    task_part = [] if probe == "perplexity" else [
        task.name, task.kind, task.source, task.dataset, task.text_column, task.label_column,
        task.validation_fraction, task.test_fraction,
    ]
    return [CACHE_VERSION, probe, dataclasses.asdict(cfg.model), task_part, cfg.train.probe_samples,
            cfg.train.probe_max_length, cfg.train.device, cfg.train.precision, platform.python_version(),
            platform.node()]


def path(cfg: TrialConfig, model_kind: str) -> Path | None:
    key = identity(cfg, model_kind)
    if key is None:
        return None
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(cfg.cache_dir).expanduser() / "probes" / f"{digest}.json"


def read(cfg: TrialConfig, model_kind: str) -> dict | None:
    """{"score", "items", "weights", "probe_identity", ...} of the base model, or None when not cached (or torn)."""

    where = path(cfg, model_kind)
    kept = read_json(where) if where else None
    return kept if isinstance(kept, dict) and "score" in kept and kept.get("identity") == _jsonable(cfg, model_kind) \
        else None


def _jsonable(cfg: TrialConfig, model_kind: str):
    return json.loads(json.dumps(identity(cfg, model_kind), default=str))


def lock(where: Path):
    from filelock import FileLock

    where.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(where) + ".lock")


def model_lock_path(cfg: TrialConfig) -> Path:
    """What a preparer locks while the model's kind, hence its probe key, is not known yet (before conversion)."""
    digest = hashlib.sha256(json.dumps(dataclasses.asdict(cfg.model), sort_keys=True).encode()).hexdigest()[:16]
    return Path(cfg.cache_dir).expanduser() / "probes" / f"model-{digest}"


def fill(cfg: TrialConfig, load_base, make_probe, locked: bool = False) -> dict | None:
    """Load the base model as the trial would (load_base, make_probe: the trial's own functions, passed in so this
    module never imports the trial), score its probe and keep the score; in the calling process, so call it from a
    process of its own (bench.launch.shared_child). Under the entry's file lock, so parallel callers compute it
    once; locked: the caller already holds it."""
    import contextlib
    import time


    base = load_base(cfg)
    where = path(cfg, base.model_kind)
    if where is None:
        return None
    with contextlib.nullcontext() if locked else lock(where):
        kept = read(cfg, base.model_kind)
        if kept is not None:
            return kept
        probe = make_probe(cfg, base)
        started = time.perf_counter()
        scored = probe.measure(base.model)
        kept = {"identity": _jsonable(cfg, base.model_kind), "probe_identity": probe.cache_identity(),
                "score": scored.value, "items": scored.items, "weights": scored.weights,
                "seconds": round(time.perf_counter() - started, 3), "device": str(base.device)}
        write_atomic(where, kept)
        return kept
