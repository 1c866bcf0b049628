"""How long a trial process lives: it dies with the process that started it and with the sweep, and a process is
told apart from a later one that reused its pid. Used by sweep trials (bench.launch.worker) and by the ranks of a
distributed trial (bench.launch.rank); imports nothing else of bench, so both can use it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1
PARENT_ENV = "PEFT_BENCH_PARENT_PID"  # the process that started this trial: the trial dies with it
SWEEP_ENV = "PEFT_BENCH_SWEEP"  # identity of the `peft-bench` process that started the sweep (bench.cli.run)
SWEEP_POLL_SECONDS = 2.0


def process_identity(pid: int | None = None) -> str:
    """boot id, pid namespace, SLURM job, pid and start time of a process: what tells, from another process,
    that it is still that very process, on this machine, in this namespace."""
    pid = pid or os.getpid()
    return json.dumps([_boot_id(), _pid_namespace(), os.environ.get("SLURM_JOB_ID"), pid, _started(pid)])


def _started(pid: int):
    """When the process started, on a clock the wall clock cannot move: clock ticks since boot (/proc/PID/stat,
    field 22). psutil's create_time adds the boot time read from the wall clock, so a clock adjustment (NTP, a VM
    resumed) changes it, and a live sweep would look like another process. Elsewhere: create_time, to 1 s."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        import psutil

        return round(psutil.Process(pid).create_time())


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def die_with_parent() -> None:
    """Linux: when the sweep process that started this trial dies (even by SIGKILL), the trial dies too,
    so a killed sweep leaves no orphan still training and writing a record behind a resumed sweep's back."""
    parent = os.environ.get(PARENT_ENV)
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
    workers outlive a killed sweep, and the parent-death signal only sees the direct parent. Only where that pid
    means the same process: same boot, same pid namespace, same SLURM job (a SLURM trial's life is the
    scheduler's business)."""
    try:
        boot, namespace, slurm_job, pid, started = json.loads(os.environ.get(SWEEP_ENV, ""))
    except (ValueError, TypeError):
        return
    here = (_boot_id(), _pid_namespace(), os.environ.get("SLURM_JOB_ID"))
    if None in here[:2] or (boot, namespace, slurm_job) != here or pid in (os.getpid(), os.getppid()):
        return  # elsewhere, or the sweep is the direct parent (die_with_parent covers that)

    def watch() -> None:
        import psutil

        while True:
            try:
                if _started(pid) != started or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(SWEEP_POLL_SECONDS)
        print(f"peft-bench: the sweep process ({pid}) is gone; this trial ends with it", file=sys.stderr, flush=True)
        os._exit(1)

    threading.Thread(target=watch, name="peft-bench-sweep-watch", daemon=True).start()
