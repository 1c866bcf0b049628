"""One rank of a distributed trial: `python -m bench.distributed.rank RUN_DIR`, started by bench.distributed.launch
under torch's elastic agent (RANK, WORLD_SIZE, MASTER_ADDR... in the environment; the Trainer joins the group).

Every rank loads the model, applies the method and trains its share; then all gather their figures and the trained
weights, and rank 0 alone measures the gathered model (quality, latency, checkpoint, forgetting) as a one-process
trial does, and writes the result. Each rank keeps RUN_DIR/rank<i>.json up to date (pid, phase) and writes
RUN_DIR/rank<i>.error.json when it fails, so the launcher can say which rank died, where, and why.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from bench.distributed.files import CONFIG_NAME, RESULT_NAME, error_path, status_path
from bench.trial import Phases


class RankPhases(Phases):
    """The trial's phases, each also written to this rank's status file as it starts."""

    def __init__(self, run_dir: Path, rank: int):
        super().__init__()
        self.path, self.rank = status_path(run_dir, rank), rank

    @contextmanager
    def __call__(self, name: str):
        from bench.results.record import write_atomic

        write_atomic(self.path, {"rank": self.rank, "pid": os.getpid(), "phase": name}, indent=None)
        with super().__call__(name):
            yield


def main(run_dir: str) -> None:
    from bench.sweep.lifetime import die_with_parent, die_with_sweep

    die_with_parent()  # the launcher's death (a sweep's timeout kill included) ends this rank
    die_with_sweep()
    folder, rank = Path(run_dir), int(os.environ["RANK"])
    phases = RankPhases(folder, rank)
    try:
        with phases("config"):
            from bench import config

            given = json.loads((folder / CONFIG_NAME).read_text())
            cfg = config.from_dict(given["config"])
            _pin_device(cfg)
        _run(cfg, folder, rank, phases, given)
    except BaseException as error:
        _write_error(folder, rank, error, phases.current)
        raise


def _pin_device(cfg) -> None:
    """On GPU each rank owns the device of its local rank, from the start (the model loads onto it)."""
    import torch

    if cfg.train.device != "cpu" and torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))


def _run(cfg, folder: Path, rank: int, phases: RankPhases, given: dict) -> None:
    from bench import trial
    from bench.distributed import gather
    from bench.distributed.comm import CommProfiler, profiled_step
    from bench.results.record import write_atomic

    metrics, items = {}, {}
    ready = trial.setup(cfg, phases, metrics, with_probe=rank == 0)  # the probe runs once, on rank 0
    with phases("train"):
        memory = trial.training_memory(cfg, ready.device)
        step = profiled_step(cfg.train.max_steps, cfg.train.warmup_steps, cfg.train.measure_flops)
        comm = CommProfiler(step, ready.device, outside_memory=memory.paused)
        trainer, memory, speed = trial._train(cfg, ready.method, ready.method_cfg, ready.model, ready.tokenizer,
                                              ready.data, ready.device, given["progress"] and rank == 0, [comm], memory)
        for untimed in comm.untimed_steps:  # profiled: their time, the profiler's overhead, stay out of the speed
            speed.leave_out(untimed)
    energy = {"energy_key": phases.energy.key, "energy_source": phases.energy.source,
              "energy_joules_by_phase": dict(phases.energy.joules)}  # this rank's device, load to train
    with phases("gather"):
        model, group = gather.trained(cfg, trainer, memory, speed, ready, rank, folder, {**comm.figures, **energy})
    if rank != 0:
        return
    metrics.update(group)
    trial.add_mfu(metrics, ready.device, Path(cfg.cache_dir).expanduser(), processes=cfg.train.nproc)
    trial.measure(cfg, ready, model, phases, metrics, items, Path(given["trial_dir"]) if given["trial_dir"] else None)
    add_own_phases(metrics, phases.metrics())
    write_atomic(folder / RESULT_NAME, {"metrics": metrics, "items": items})


def add_own_phases(metrics: dict, own: dict) -> None:
    """Rank 0's own phase figures, under the group's: the group's energy of the phases every rank ran (summed over
    their devices) stands, and rank 0's counter adds the phases only it ran (evaluate, latency, probe...)."""
    metrics.update({key: value for key, value in own.items() if key not in metrics})


def _write_error(folder: Path, rank: int, error: BaseException, phase: str) -> None:
    from bench.config import ConfigError, Unsupported
    from bench.results.record import error_info, write_atomic

    kind = "skipped" if isinstance(error, Unsupported) else "config" if isinstance(error, ConfigError) else "failed"
    info = error_info(error, "config" if kind != "failed" else phase)
    write_atomic(error_path(folder, rank), {"rank": rank, "kind": kind, "time": time.time(), "error": info})


if __name__ == "__main__":
    main(sys.argv[1])
