"""A single trial, started here: the shared work first (bench.launch.shared, in a child process where a cache is
cold), then the trial in this process, or over train.nproc rank processes (bench.launch.ranks) when
train.distributed asks for it. The trial itself (bench.trial) does not choose how it runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench import distributed, trial
from bench.config import TrialConfig
from bench.launch import ranks, shared
from bench.results.record import TrialRecord
from bench.trackers.load import TRIAL_ROOT_ENV


def run_trial(cfg: TrialConfig, progress: bool = True, trial_dir: Path | None = None) -> TrialRecord:
    """The trial's record; never raises for a trial failure (the record says ok, failed with phase, or skipped)."""
    os.environ[TRIAL_ROOT_ENV] = str(os.getpid())  # the processes this one starts (ranks) are the trial's own
    if distributed.enabled(cfg):  # the trial is a process group; this process launches it
        return trial.run(cfg, progress, trial_dir, runner=ranks.run, prepare=_checked_then_filled)
    return trial.run(cfg, progress, trial_dir, runner=trial.in_process, prepare=shared.fill_shared_caches)


def _checked_then_filled(cfg: TrialConfig) -> dict:
    """A distributed trial: what only this machine can tell (a GPU per rank), and whether the method's optimizer can
    be sharded, before the shared work."""
    ranks.check(cfg)
    trial.check_shardable(cfg)
    return shared.fill_shared_caches(cfg)
