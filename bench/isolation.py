"""Each trial of a sweep in its own process, so memory peaks are the trial's own and a crash ends only it.

The parent writes the trial's config, starts `python -m bench.worker DIR`, and, if the child died without a
record (killed, segfault, out of host memory), records the trial as failed with the cause.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from bench.config import TrialConfig
from bench.results import record as records

CONFIG_NAME = "trial_config.json"


def _cause(returncode: int) -> str:
    if returncode < 0:
        name = signal.Signals(-returncode).name
        hint = " (killed: out of host memory or stopped by a user or scheduler)" if name == "SIGKILL" else ""
        return f"trial process died from {name}{hint}"
    return f"trial process exited with code {returncode} and left no record"


def run_isolated(cfg: TrialConfig, trial_dir: Path):
    from bench.trial import identity

    trial_dir.mkdir(parents=True, exist_ok=True)
    record_path = trial_dir / records.RECORD_NAME
    record_path.unlink(missing_ok=True)  # only unfinished (failed or skipped) records reach here: they are redone
    records.write_atomic(trial_dir / CONFIG_NAME, cfg.to_dict())
    process = subprocess.run([sys.executable, "-m", "bench.worker", str(trial_dir)])
    written = records.read(record_path)
    if written is not None and written.get("key") == cfg.key():
        return written
    failed = records.TrialRecord(
        status="failed", config={**cfg.to_dict(), "learning_rate": cfg.learning_rate}, key=cfg.key(), identity=identity(cfg),
        error={"type": "ProcessDied", "message": _cause(process.returncode), "phase": "process"},
        provenance=records.provenance(cfg.seed, "unknown"),
    )
    records.write(failed, trial_dir)
    print(f"peft-bench: {failed.identity['method']} on {cfg.model.name}/{cfg.task.name}: FAILED: {failed.error['message']}",
          flush=True)
    return failed.to_dict()
