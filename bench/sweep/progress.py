"""What a sweep prints on the console: one line per sweep trial with its position (i/N) and an ETA (the trial's
own bar: bench.trial.progress). Imports nothing heavy: the sweep process reads it before it forks its trials.

  .venv/bin/python -m pytest -q tests/test_progress.py
"""

from __future__ import annotations

import os
import time
from pathlib import Path

STARTED_ENV = "PEFT_BENCH_SWEEP_STARTED"  # wall time the sweep started (seconds since the epoch)
TOTAL_ENV = "PEFT_BENCH_SWEEP_TOTAL"  # trials the sweep will launch; set by the sweep process, read by its jobs


def count_trials(config) -> int | None:
    """How many trials the sweep launches: the Optuna sweeper's n_trials, or the product of the basic sweeper's
    parameter lists (the preset's `hydra.sweeper.params`, then the command line, which wins for the same key).
    None for any other sweeper: the sweep line then shows no total and no ETA."""
    sweeper = config.hydra.sweeper
    if sweeper.get("n_trials"):
        return int(sweeper.n_trials)
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.global_hydra import GlobalHydra
        from hydra.core.override_parser.overrides_parser import OverridesParser

        params = [f"{key}={value}" for key, value in (sweeper.get("params") or {}).items()]
        parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
        overrides = parser.parse_overrides(params + list(config.hydra.overrides.task))
        return len(BasicSweeper.split_arguments(overrides, None)[0])
    except Exception:  # noqa: BLE001 - a count we cannot make costs the line its total, never the sweep
        return None


def sweep_started(config) -> None:
    """Called once in the sweep process before any trial: the jobs (here, or in launcher workers started after
    this) read the start time and the total from the environment."""
    os.environ[STARTED_ENV] = repr(time.time())
    total = count_trials(config)
    if total:
        os.environ[TOTAL_ENV] = str(total)
    else:
        os.environ.pop(TOTAL_ENV, None)


def _job_number() -> int | None:
    try:
        from hydra.core.hydra_config import HydraConfig

        return int(HydraConfig.get().job.num) + 1
    except Exception:  # noqa: BLE001 - outside a Hydra job (a test, bench.launch.worker by hand): no position
        return None


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def position(trial_dir: Path, now: float | None = None) -> str:
    """'[3/24, 2.1 min in, ETA 14.0 min] ' for the trial about to start: the ETA is the wall time per trial
    finished so far in this sweep (records written since it started, so parallel launchers count) times the
    trials still to start. '' outside a sweep."""
    number, started = _job_number(), os.environ.get(STARTED_ENV)
    if number is None or started is None:
        return ""
    total = int(os.environ[TOTAL_ENV]) if os.environ.get(TOTAL_ENV) else None
    elapsed = (now or time.time()) - float(started)
    parts = [f"{number}/{total}" if total else f"{number}", f"{_minutes(elapsed)} in"]
    finished = _records_since(trial_dir.parent, float(started))
    if total and finished:
        parts.append(f"ETA {_minutes(elapsed / finished * (total - number + 1))}")
    return f"[{', '.join(parts)}] "


def _records_since(sweep_dir: Path, started: float) -> int:
    count = 0
    for record in sweep_dir.glob("*/record.json"):
        try:
            count += record.stat().st_mtime >= started
        except OSError:  # written or replaced while we look
            pass
    return count
