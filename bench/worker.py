"""Child process of a sweep: `python -m bench.worker TRIAL_DIR` runs the trial in TRIAL_DIR/trial_config.json.

Run it by hand to redo one trial of a sweep in place (its record is replaced).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1
SWEEP_ENV = "PEFT_BENCH_SWEEP"  # "host:pid" of the `peft-bench` process that started the sweep (bench.cli)
SWEEP_POLL_SECONDS = 2.0


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def die_with_parent() -> None:
    """Linux: when the sweep process that started this trial dies (even by SIGKILL), the trial dies too,
    so a killed sweep leaves no orphan still training and writing a record behind a resumed sweep's back."""
    parent = os.environ.get("PEFT_BENCH_PARENT_PID")
    if not parent or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):  # the parent died before prctl took effect
        os._exit(1)


def die_with_sweep() -> None:
    """End this trial when the sweep process is gone, even if the process between them lives on: joblib's loky
    workers outlive a killed sweep, and the parent-death signal only sees the direct parent. Only on the sweep's
    own host: a SLURM job's trial runs on another node, where that pid means nothing."""
    host, _, pid = os.environ.get(SWEEP_ENV, "").rpartition(":")
    if not pid.isdigit() or host != socket.gethostname() or int(pid) in (os.getpid(), os.getppid()):
        return  # no sweep, another host, or the sweep is the direct parent (covered by die_with_parent)

    def watch() -> None:
        import psutil

        while True:
            try:
                if psutil.Process(int(pid)).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(SWEEP_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="peft-bench-sweep-watch", daemon=True).start()


def main(trial_dir: str) -> None:
    die_with_parent()
    die_with_sweep()
    from bench import config, trial
    from bench.cli import summary
    from bench.isolation import CONFIG_NAME
    from bench.results import record as records
    from bench.sweep import faults

    folder = Path(trial_dir)
    cfg = config.from_dict(json.loads((folder / CONFIG_NAME).read_text()))
    faults.install(cfg.method.name)  # test-only (PEFT_BENCH_FAULT); a no-op otherwise
    result = trial.run(cfg, progress=sys.stdout.isatty())
    path = records.write(result, folder)
    print(summary(result, path), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
