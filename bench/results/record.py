"""The trial record: schema, atomic writes, provenance.

A record is the one file a trial leaves: status (ok | failed | skipped), the error when it failed (type, message,
phase), the resolved config, provenance, and the metrics (the columns of bench/results/metrics.py).
"""

from __future__ import annotations

import os
import platform
import subprocess
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from bench import methods
from bench.common.files import read_json, write_atomic

SCHEMA_VERSION = 1
RECORD_NAME = "record.json"
ITEMS_NAME = "items.json"  # per-item scores beside the record: {"quality": [...], "probe_before": [...], ...}
OK, FAILED, SKIPPED = "ok", "failed", "skipped"  # a record's status
STATUSES = (OK, FAILED, SKIPPED)
# `skipped`: the trial refused a combination it cannot run here (a generation task on an encoder, QLoRA without a
# GPU): running it again gives the same answer, so it counts as finished like `ok`. `failed` trials run again.
FINISHED = (OK, SKIPPED)
TRACEBACK_CHARS = 4000  # tail of the traceback kept in a failed record
PACKAGES = ("torch", "transformers", "peft", "datasets", "accelerate", "hydra-core", "peft-bench")


@dataclass
class TrialRecord:
    status: str  # OK | FAILED | SKIPPED
    config: dict
    key: str  # hash of the config: resume matches finished trials by it
    identity: dict  # method, family, model, task, seed
    metrics: dict = field(default_factory=dict)
    error: dict | None = None  # {"type", "message", "phase"}
    provenance: dict = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    finished_at: str = ""
    items: dict = field(default_factory=dict)  # per-item score lists, written to ITEMS_NAME, not into the record

    def to_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items() if key != "items"}


def write(record: TrialRecord, folder: Path) -> Path:
    record.finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    items_path = Path(folder) / ITEMS_NAME
    if record.items:  # before the record: a finished record always has its items beside it
        write_atomic(items_path, record.items, indent=None)
    else:
        items_path.unlink(missing_ok=True)  # none from an earlier run of the same folder either
    path = Path(folder) / RECORD_NAME
    write_atomic(path, record.to_dict())
    return path


def read(path: Path) -> dict | None:
    """A record, or None when the file is missing or not a complete record."""
    payload = read_json(path)
    return payload if isinstance(payload, dict) and "status" in payload else None


def identity(config: dict) -> dict:
    """method / family / model / task / seed of a trial, from its config as a dict (a TrialConfig's to_dict(), or the
    raw values of a config that did not validate: then whatever can be read, None for the rest)."""
    name = {part: (config.get(part) or {}).get("name") if isinstance(config.get(part), dict) else None
            for part in ("method", "model", "task")}
    method = methods.registry().get(name["method"]) if isinstance(name["method"], str) else None
    return {"method": name["method"], "family": method.family if method else None, "model": name["model"],
            "task": name["task"], "seed": config.get("seed")}


def error_info(error: BaseException, phase: str, with_traceback: bool = True) -> dict:
    """The record's `error`: type, first line of the message, phase, and the traceback's tail."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    info = {"type": type(error).__name__, "message": message, "phase": phase}
    if with_traceback:
        info["traceback"] = "".join(traceback.format_exception(error))[-TRACEBACK_CHARS:]
    return info


def _git(*args: str) -> str | None:
    try:
        here = Path(__file__).resolve().parent
        done = subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=5, check=True)
        return done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(seed: int, device: str) -> dict:
    import torch

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "packages": versions,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "device_name": (torch.cuda.get_device_name() if device.startswith("cuda")
                        else platform.processor() or platform.machine()),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "seed": seed,
    }
