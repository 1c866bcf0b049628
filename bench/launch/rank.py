"""One rank of a distributed trial: `python -m bench.launch.rank RUN_DIR`, started by bench.launch.ranks under torch's
elastic agent (RANK, WORLD_SIZE, MASTER_ADDR... in the environment; the Trainer joins the group).

What a rank does is the trial's (bench.trial.ranks); this is its process: it dies with the launcher, keeps
RUN_DIR/rank<i>.json up to date (pid, phase), writes RUN_DIR/rank<i>.error.json when it fails, so the launcher can say
which rank died, where, and why, and rank 0 writes the trial's figures for the launcher to record.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from bench import config
from bench.common.files import write_atomic
from bench.config import ConfigError, Unsupported
from bench.distributed.files import CONFIG_NAME, RESULT_NAME, error_path, status_path
from bench.launch.lifetime import die_with_parent, die_with_sweep
from bench.results.record import error_info
from bench.trial import Phases
from bench.trial.ranks import on_rank


class RankPhases(Phases):
    """The trial's phases, each also written to this rank's status file as it starts."""

    def __init__(self, run_dir: Path, rank: int):
        super().__init__()
        self.path, self.rank = status_path(run_dir, rank), rank

    @contextmanager
    def __call__(self, name: str):
        write_atomic(self.path, {"rank": self.rank, "pid": os.getpid(), "phase": name}, indent=None)
        with super().__call__(name):
            yield


def main(run_dir: str) -> None:
    die_with_parent()  # the launcher's death (a sweep's timeout kill included) ends this rank
    die_with_sweep()
    folder, rank = Path(run_dir), int(os.environ["RANK"])
    phases = RankPhases(folder, rank)
    try:
        with phases("config"):
            given = json.loads((folder / CONFIG_NAME).read_text())
            cfg = config.from_dict(given["config"])
            _pin_device(cfg)
        trial_dir = Path(given["trial_dir"]) if given["trial_dir"] else None
        found = on_rank(cfg, phases, rank, folder, given["progress"], trial_dir)
        if found is not None:  # rank 0
            write_atomic(folder / RESULT_NAME, {"metrics": found.figures, "items": found.items})
    except BaseException as error:
        _write_error(folder, rank, error, phases.current)
        raise


def _pin_device(cfg) -> None:
    """On GPU each rank owns the device of its local rank, from the start (the model loads onto it)."""
    if cfg.train.device != "cpu" and torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))


def _write_error(folder: Path, rank: int, error: BaseException, phase: str) -> None:
    kind = "skipped" if isinstance(error, Unsupported) else "config" if isinstance(error, ConfigError) else "failed"
    info = error_info(error, "config" if kind != "failed" else phase)
    write_atomic(error_path(folder, rank), {"rank": rank, "kind": kind, "time": time.time(), "error": info})


if __name__ == "__main__":
    main(sys.argv[1])
