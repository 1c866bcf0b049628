"""What a trial and a sweep print on the console: one progress bar per trial with the loss in its postfix, one
line per sweep trial with its position (i/N) and an ETA, and library warnings only with `verbose=true`.

  .venv/bin/python -m pytest -q tests/test_progress.py

Transformers' own Trainer output (a bar plus a raw `{'loss': ...}` dict per logging step, or the dicts alone
when its bar is off) is replaced here, so a default trial fits one screen: bar, summary, record path.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

from transformers import TrainerCallback

STARTED_ENV = "PEFT_BENCH_SWEEP_STARTED"  # wall time the sweep started (seconds since the epoch)
TOTAL_ENV = "PEFT_BENCH_SWEEP_TOTAL"  # trials the sweep will launch; set by the sweep process, read by its jobs
NON_TTY_REFRESH_SECONDS = 10.0  # a bar written to a log file redraws rarely, so the file stays small


def quiet_libraries(verbose: bool) -> None:
    """Without `verbose`, library warnings (deprecations, FutureWarnings) and info logs stay off the console;
    the harness's own warnings (module `bench.`) still show."""
    import datasets
    import transformers

    transformers.utils.logging.disable_progress_bar()  # the loaders' bars, even verbose: the trial's bar is TrialBar
    datasets.disable_progress_bars()
    if verbose:
        warnings.simplefilter("default")
        transformers.logging.set_verbosity_warning()
        datasets.logging.set_verbosity_warning()
        return
    warnings.simplefilter("ignore")
    warnings.filterwarnings("default", module=r"bench\.")
    transformers.logging.set_verbosity_error()
    datasets.logging.set_verbosity_error()


class TrialBar(TrainerCallback):
    """One bar over the training steps; each logged loss goes into its postfix (and, verbose, onto a line)."""

    def __init__(self, label: str, verbose: bool = False):
        self.label, self.verbose, self.bar = label, verbose, None

    def on_train_begin(self, args, state, control, **kwargs):
        from tqdm.auto import tqdm

        if state.is_world_process_zero:
            self.bar = tqdm(total=state.max_steps, desc=self.label, unit="step", dynamic_ncols=True, file=sys.stderr,
                            mininterval=0.1 if sys.stderr.isatty() else NON_TTY_REFRESH_SECONDS)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is None or not logs or "loss" not in logs:
            return
        self.bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)
        if self.verbose:
            values = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in logs.items())
            self.bar.write(f"step {state.global_step}: {values}", file=sys.stderr)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def attach(trainer, label: str, show_bar: bool, verbose: bool = False) -> None:
    """Replace the Trainer's console callbacks (its bar and its printed log dicts) by TrialBar, or by nothing."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if show_bar:
        trainer.add_callback(TrialBar(label, verbose))


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
    except Exception:  # noqa: BLE001 - outside a Hydra job (a test, bench.sweep.worker by hand): no position
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
