"""How many trials a sweep's launcher runs at once, as far as its config says; each trial records it
(`concurrent_trials`) so that speed and latency figures timed beside another trial are known for what they are.

  basic             one at a time: 1
  joblib            hydra.launcher.n_jobs (negative: joblib's count of CPUs + 1 + n_jobs), on this machine
  submitit (local)  array_parallelism, on this machine
  submitit (SLURM)  array_parallelism: at most that many at once, each in its own allocation, on one node or many
  Ray               None (n/a): Ray runs as many as its resources allow, which its config does not fix
"""

from __future__ import annotations

import contextlib
import os

from bench.trackers.load import CONCURRENT_ENV


def launcher_concurrency(launcher: dict) -> tuple[int | None, str]:
    """(trials at once, where that figure comes from) for a Hydra launcher's config."""
    target = str(launcher.get("_target_", ""))
    if "joblib" in target.lower():
        n_jobs = launcher.get("n_jobs")
        n_jobs = -1 if n_jobs is None else int(n_jobs)
        count = n_jobs if n_jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + n_jobs)
        return count, f"joblib n_jobs={launcher.get('n_jobs')}"
    if "submitit" in target.lower() or "slurm" in target.lower():  # the plugin's, or one that extends it
        where = "local" if "Local" in target else "slurm"
        parallelism = launcher.get("array_parallelism")
        return (int(parallelism) if parallelism else None), f"submitit {where} array_parallelism={parallelism}"
    if "ray" in target.lower():
        return None, "ray: as many as the cluster's resources allow (not known to the trial)"
    if "basic" in target.lower():
        return 1, "basic launcher: one at a time"
    return None, f"unknown launcher {target or '(none)'}"


@contextlib.contextmanager
def announced(launcher: dict):
    """Tell the trials this process starts inside the block (forked or spawned, they inherit the environment) how
    many run at once. The environment is restored after it: a trial run later in the same process (under pytest, in
    a notebook) is no sweep's, and read "basic launcher" after an earlier in-process sweep."""
    count, source = launcher_concurrency(launcher)
    before = os.environ.get(CONCURRENT_ENV)
    os.environ[CONCURRENT_ENV] = f"{'' if count is None else count}|{source}"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(CONCURRENT_ENV, None)
        else:
            os.environ[CONCURRENT_ENV] = before
