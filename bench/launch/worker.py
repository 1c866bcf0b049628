"""Child process of a sweep: `python -m bench.launch.worker TRIAL_DIR` runs the trial in TRIAL_DIR/trial_config.json.

The function that runs it is named in TRIAL_DIR/trial_runner.txt (`module:function`, e.g. a serving trial's); without
that file, a training trial. Run it by hand to redo one trial of a sweep in place (its record is replaced).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from bench import config
from bench.launch.lifetime import die_with_parent, die_with_sweep
from bench.results import record as records
from bench.results.console import trial_line
from bench.sweep import faults

CONFIG_NAME = "trial_config.json"  # the trial's config, written by the sweep process (bench.launch.isolation)
RUNNER_NAME = "trial_runner.txt"  # `module:function` that runs the trial in its folder, written beside the config


def run_trial(folder: Path) -> None:
    """The training trial: config file -> trial -> record (and its summary on stdout)."""
    # imported here, in the child: the sweep process imports this module before it decides to fork, and the trial
    # imports torch (bench.launch.isolation)
    from bench.launch.trial import run_trial as run

    cfg = config.from_dict(json.loads((folder / CONFIG_NAME).read_text()))
    faults.install(cfg.method.name)  # test-only (PEFT_BENCH_FAULT); a no-op otherwise
    result = run(cfg, progress=sys.stdout.isatty(), trial_dir=folder)
    records.write(result, folder)
    print(trial_line(result, folder.name), flush=True)  # a sweep's trials, one line each; the record has the rest


def runner_name(runner) -> str:
    """`module:function`, by which a fresh interpreter finds the runner again; it must live in an importable module
    (a script run as __main__ is another module in the worker)."""
    if runner.__module__ == "__main__" or "." in runner.__qualname__:
        raise ValueError(f"a trial runner must be a module-level function of an importable module, not {runner!r}")
    return f"{runner.__module__}:{runner.__qualname__}"


def load_runner(folder: Path):
    """The function named in the folder's RUNNER_NAME file; run_trial where there is none."""
    path = folder / RUNNER_NAME
    if not path.is_file():
        return run_trial
    module, _, function = path.read_text().strip().partition(":")
    return getattr(importlib.import_module(module), function)


def main(trial_dir: str) -> None:
    die_with_parent()
    die_with_sweep()
    folder = Path(trial_dir)
    load_runner(folder)(folder)


if __name__ == "__main__":
    main(sys.argv[1])
