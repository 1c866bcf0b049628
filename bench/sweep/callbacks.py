"""Hydra callback (conf/config.yaml, `hydra.callbacks`): when a sweep ends, consolidate its folder into
trials.csv / trials.parquet and print one line counting ok / failed / skipped, then the failures.

It runs in the process that launched the sweep, whatever the launcher (jobs under joblib, submitit or Ray run
elsewhere), so it counts from the records on disk, not from job return values.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

from hydra.experimental.callback import Callback
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

from bench import config as configs
from bench.results import consolidate
from bench.results.record import FAILED, STATUSES
from bench.sweep.progress import sweep_started

MAX_FAILURES_SHOWN = 20


class SweepEnd(Callback):
    def __init__(self, build: str = "bench.config.from_dict", program: str = "peft-bench") -> None:
        self.started = time.time()
        self.build = build  # what turns the resolved config into a trial's (peft-bench-serve names its own)
        self.program = program  # the name a one-line error starts with

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        check_shared_values(config, get_method(self.build), self.program)
        self.started = time.time()
        sweep_started(config)  # each trial's line shows i/N and an ETA
        Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)  # e.g. for an Optuna study's sqlite file

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        folder = Path(str(config.hydra.sweep.dir))
        print(summarise(folder, self.started, time.time() - self.started), flush=True)


def check_shared_values(config: DictConfig, build, program: str = "peft-bench") -> None:
    """A bad value that every trial of the sweep shares (`seed=abc`, `train.batch_size=0`) stops the sweep before any
    trial, in one line, exit 2, as on a single run: this is the config the sweep's trials start from, before the
    swept values, given to `build` (the resolved dict -> a trial's config, raising ConfigError). A value only some
    trials get is theirs to fail, and the sweep goes on."""
    raw = OmegaConf.to_container(config, resolve=False)
    raw.pop("hydra", None)
    configs.pop_run_options(raw)
    try:
        resolved = OmegaConf.to_container(OmegaConf.create(raw), resolve=True)
    except Exception:  # noqa: BLE001 - an interpolation only a trial can resolve: each trial says what failed
        return
    # bad input: one line and exit here (Hydra would turn a callback's exception into a warning)
    configs.exit_on_bad_input(program, lambda: build(resolved))


def _int(value):
    return int(value) if isinstance(value, float) and value.is_integer() else value


def summarise(folder: Path, started: float | None = None, seconds: float | None = None) -> str:
    """Consolidate the sweep folder and describe it: counts by status, how many ran now, each failure."""
    table = consolidate.load_table(folder)
    if table.empty:
        return f"peft-bench: sweep {folder}: no trial record"
    csv = consolidate.write(table, folder)
    counts = table["status"].value_counts()
    line = f"peft-bench: sweep {folder.name}: {len(table)} trials: " + ", ".join(
        f"{counts.get(status, 0)} {status}" for status in STATUSES)
    if started is not None:
        since = datetime.fromtimestamp(int(started) - 1, timezone.utc).isoformat(timespec="seconds")
        ran = int((table["finished_at"].fillna("") >= since).sum())
        line += f" ({ran} run now, {len(table) - ran} from earlier runs"
        line += f", {seconds / 60:.1f} min)" if seconds is not None else ")"
    lines = [line, f"  table: {csv}"]
    failed = table[table["status"] == FAILED]
    for _, row in failed.head(MAX_FAILURES_SHOWN).iterrows():
        parts = Path(str(row["trial_dir"])).name.split("__", 4)
        extra = f" ({parts[4][:60]})" if len(parts) == 5 else ""  # the overrides that tell apart trials of one method
        lines.append(f"  failed: {row['method']} on {row['model']}/{row['task']}, seed {_int(row['seed'])}{extra} "
                     f"[{row['error_phase']}] {row['error_type']}: {row['error_message']}")
    if len(failed) > MAX_FAILURES_SHOWN:
        lines.append(f"  ... and {len(failed) - MAX_FAILURES_SHOWN} more failures in the table")
    return "\n".join(lines)
