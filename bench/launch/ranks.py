"""The launcher side of a distributed trial: checks, then train.nproc ranks (bench.launch.rank) under torch's elastic
agent (the engine behind `torchrun`), run from the trial's own process; rank 0's result becomes the trial's figures.

A rank that fails or dies ends the trial: the agent stops the others (SIGTERM, then SIGKILL after
SHUTDOWN_TIMEOUT_S) and this module raises RankFailed with the cause, read from the rank's error file (exception,
phase) or, for a rank killed by a signal, from the agent (signal, pid) and the rank's last phase. Ranks die with this
process (bench.launch.rank sets their parent-death signal), so a trial_timeout or a killed sweep leaves no rank
behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench.config import ConfigError, Unsupported
from bench.distributed import files
from bench.launch.lifetime import PARENT_ENV
from bench.launch.shared import trial_threads
from bench.trial import Measured, Run

RUN_DIR_NAME = "ranks"  # inside the trial folder: each rank's status and error, rank 0's result
SHUTDOWN_TIMEOUT_S = 5  # after one rank fails, the others get this long to end on SIGTERM before SIGKILL


class RankFailed(RuntimeError):
    """A rank of the trial failed or died; `record_error` is the trial record's error (type, message, phase)."""

    def __init__(self, record_error: dict):
        super().__init__(record_error["message"])
        self.record_error = record_error


def check(cfg) -> None:
    """What only this machine can tell, before anything is loaded: one GPU per rank on GPU."""
    import torch

    wants_gpu = cfg.train.device == "cuda" or (cfg.train.device == "auto" and torch.cuda.is_available())
    if wants_gpu and cfg.train.nproc > torch.cuda.device_count():
        raise ConfigError(f"`train.nproc` ({cfg.train.nproc}) is more than the {torch.cuda.device_count()} GPU(s) "
                          f"here for `train.distributed` ({cfg.train.distributed!r}): one GPU per process")


def run(this: Run) -> None:
    """Run the trial over its process group: a runner of bench.trial.running, as bench.trial.in_process is."""
    cfg, trial_dir = this.cfg, this.trial_dir
    with ExitStack() as stack, this.phases("group"):
        run_dir = _run_dir(trial_dir, stack)
        payload = {"config": cfg.to_dict(), "trial_dir": str(trial_dir) if trial_dir else None,
                   "progress": this.progress}
        (run_dir / files.CONFIG_NAME).write_text(json.dumps(payload))
        _launch(cfg, run_dir)
        result = json.loads((run_dir / files.RESULT_NAME).read_text())
    this.found.add(Measured(result["metrics"], result["items"]))


def _run_dir(trial_dir: Path | None, stack: ExitStack) -> Path:
    """trial_dir/ranks, emptied (a rerun must not read the last run's files); a temporary folder without one."""
    if trial_dir is None:
        return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="peft-bench-ranks-")))
    run_dir = Path(trial_dir) / RUN_DIR_NAME
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    return run_dir


def _launch(cfg, run_dir: Path) -> None:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=cfg.train.nproc, run_id=f"peft-bench-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d", rdzv_endpoint="localhost:0",  # what `torchrun --standalone` uses: a free local port
        max_restarts=0,  # a failed rank fails the trial; a restart would measure a different trial
        monitor_interval=0.1, start_method="spawn", shutdown_timeout=SHUTDOWN_TIMEOUT_S,
    )
    with _rank_environment(cfg):
        try:
            elastic_launch(config, sys.executable)("-u", "-m", "bench.launch.rank", str(run_dir))
        except ChildFailedError as error:
            raise _cause(run_dir, error.failures, cfg.train.nproc) from None
        except SignalException as error:  # the agent stopped the ranks and turned the signal into an exception
            if error.sigval == signal.SIGINT:
                raise KeyboardInterrupt from error  # Ctrl-C stops a distributed trial as it stops any other
            raise


@contextmanager
def _rank_environment(cfg):
    """Environment the ranks inherit: this process as their parent (they die with it) and, on CPU, the cores
    split between them (each rank would otherwise start a thread per core and all would contend)."""
    threads = trial_threads(cfg)  # the thread count whose peak FLOP/s the prepare step timed
    wanted = {PARENT_ENV: str(os.getpid()), "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    before = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _cause(run_dir: Path, failures: dict, nproc: int) -> Exception:
    """The exception that fails the trial: the first rank's own failure. A rank killed by a signal (it wrote no error
    file) is the cause over ranks that then failed on the broken connection; else the earliest error file."""
    errors = {r: _read(files.error_path(run_dir, r)) for r in failures}
    killed = [r for r, failure in failures.items() if failure.exitcode < 0 and errors[r] is None]
    if killed:
        first = killed[0]
        failure, phase = failures[first], (_read(files.status_path(run_dir, first)) or {}).get("phase", "train")
        message = f"rank {first} of {nproc} died: {failure.message or failure.signal_name()}"
        return RankFailed({"type": "RankDied", "message": message, "phase": phase, "rank": first})
    written = sorted((e["time"], r) for r, e in errors.items() if e is not None)
    if not written:
        first = min(failures)
        return RankFailed({"type": "RankFailed", "message": f"rank {first} exited with code "
                           f"{failures[first].exitcode} and left no error", "phase": "process", "rank": first})
    first = written[0][1]
    found = errors[first]
    if found["kind"] == "skipped":
        return Unsupported(found["error"]["message"])
    if found["kind"] == "config":
        return ConfigError(found["error"]["message"])
    info = dict(found["error"], rank=first)
    info["message"] = f"rank {first}: {info['message']}"
    return RankFailed(info)


def _read(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
