"""One job of a Hydra app, as peft-bench and peft-bench-serve run it: the config read, a finished record with the
same config key kept (force=true runs it again), else the trial run and its record written. A sweep's trials, and
every serving trial, run in a child process of their own (bench.launch.isolation), so a crash, running out of memory
or running past trial_timeout ends that trial only; a single training run runs in this process.

Bad input raises ConfigError (the face says it in one line, exit 2, no record), except in a training sweep, where it
becomes the trial's failed record and the sweep goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.config import ConfigError
from bench.launch import isolation
from bench.results import failures
from bench.results import record as records
from bench.results.console import summary
from bench.sweep import resume
from bench.sweep.progress import position
from bench.launch.worker import CONFIG_NAME, RUNNER_NAME


@dataclass(frozen=True)
class Kind:
    """What sets one face's trials apart: its name on the console, how its config is read, what its child process
    runs, and the figures a record starts with when the child could not write one (what files it under its kind)."""

    program: str
    read: Callable[[dict], object]  # raw values -> the typed config (raises ConfigError)
    runner: Callable[[Path], None]  # the child's function of the trial folder (bench.launch.worker)
    bad_input_stops: bool = False  # bad input stops the sweep too (serving), not only a single run
    shared_work: bool = True  # the caches trials share are filled before an isolated trial starts
    failed_figures: Callable[[object], dict] = lambda cfg: {}


def run_job(kind: Kind, raw: dict, trial_dir: Path, force: bool, isolated: bool, timeout: float | None = None):
    """Run one trial unless a finished record with the same config exists; its record (TrialRecord or dict)."""
    stops = not isolated or kind.bad_input_stops
    if not stops:
        isolation.preload_for_fork()  # before anything of the trial's own (a config failure record imports torch)
    try:
        cfg = kind.read(raw)
    except ConfigError as error:
        if stops:
            raise
        return record_config_failure(raw, error, trial_dir)
    trial_dir, finished = resume.place(trial_dir, cfg.key(), force)
    if finished is not None:
        print(f"{kind.program}: {position(trial_dir)}already finished ({finished['status']}), not run again: "
              f"{trial_dir} (force=true to run it again)", flush=True)
        return finished
    if isolated:
        return _in_child(kind, cfg, trial_dir, timeout)
    return _here(cfg, trial_dir)


def _in_child(kind: Kind, cfg, trial_dir: Path, timeout: float | None):
    if kind.shared_work:
        # imported once preload_for_fork has decided: filling the caches imports torch (bench.launch.shared)
        from bench.launch import shared

        shared.fill_shared_caches(cfg)  # base probe score, peak FLOP/s: in a process of their own, before the trial
    print(f"{kind.program}: {position(trial_dir)}running {trial_dir.name}", flush=True)
    result = isolation.run_isolated(cfg, trial_dir, timeout, runner=kind.runner, metrics=kind.failed_figures(cfg))
    if kind.bad_input_stops and result["status"] == records.FAILED and result["error"]["phase"] == "config":
        _forget(trial_dir)  # bad input found once the model was there: no record either
        raise ConfigError(result["error"]["message"])
    return result


def _here(cfg, trial_dir: Path):
    """A single training run, in this process: bad input raises (one line, no record)."""
    # imported for a single run only: the trial imports torch, which a sweep process must not before it forks
    from bench.launch.trial import run_trial

    result = run_trial(cfg, progress=True, trial_dir=trial_dir)
    if result.status != records.OK and result.error["phase"] == "config":
        raise ConfigError(result.error["message"])  # bad input on a single run: one line, no record
    path = records.write(result, trial_dir)
    print(summary(result, path), flush=True)
    return result


def record_config_failure(raw: dict, error: Exception, trial_dir: Path, phase: str = "config") -> dict:
    """A sweep trial that could not start: a failed record in the folder its raw key is given."""
    folder, _ = resume.place(trial_dir, failures.raw_key(raw), force=True)
    return failures.record_config_failure(raw, error, folder, phase)


def _forget(trial_dir: Path) -> None:
    """Remove what the trial wrote to its folder, and the folder once empty."""
    for name in (records.RECORD_NAME, CONFIG_NAME, RUNNER_NAME):
        (trial_dir / name).unlink(missing_ok=True)
    try:
        trial_dir.rmdir()
    except OSError:
        pass  # something else is in it: leave it
