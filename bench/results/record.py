"""The trial record: schema, atomic writes, provenance.

A record is the one file a trial leaves: status (ok | failed | skipped), the error when it failed (type, message,
phase), the resolved config, provenance, and the metrics (the columns listed in shared/DESIGN.md).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

SCHEMA_VERSION = 1
RECORD_NAME = "record.json"
PACKAGES = ("torch", "transformers", "peft", "datasets", "accelerate", "hydra-core", "peft-bench")


@dataclass
class TrialRecord:
    status: str  # ok | failed | skipped
    config: dict
    key: str  # hash of the config: resume matches finished trials by it
    identity: dict  # method, family, model, task, seed
    metrics: dict = field(default_factory=dict)
    error: dict | None = None  # {"type", "message", "phase"}
    provenance: dict = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    finished_at: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def write_atomic(path: Path, payload: dict) -> None:
    """Temp file in the same folder, fsync, rename: a reader sees the old record or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2, sort_keys=False, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)  # mkstemp makes owner-only files; results are shared (clusters, teams)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write(record: TrialRecord, folder: Path) -> Path:
    record.finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    path = Path(folder) / RECORD_NAME
    write_atomic(path, record.to_dict())
    return path


def read_json(path: Path):
    """The JSON a file holds, or None when it is missing or torn (the counterpart of write_atomic)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def read(path: Path) -> dict | None:
    """A record, or None when the file is missing or not a complete record."""
    payload = read_json(path)
    return payload if isinstance(payload, dict) and "status" in payload else None


def _git(*args: str) -> str | None:
    try:
        here = Path(__file__).resolve().parent
        return subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=5, check=True).stdout.strip()
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
        "device_name": torch.cuda.get_device_name() if device.startswith("cuda") else (platform.processor() or platform.machine()),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "seed": seed,
    }
