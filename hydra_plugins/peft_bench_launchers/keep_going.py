"""Hydra's submitit launchers, with one change: a job that ends without a result (scancel, a node lost, SLURM's
time limit) costs only its own trial, not the sweep.

The plugin's launcher collects each job's result and raises on the first job that has none, so one cancelled trial
ended the whole sweep with a traceback and no trials.csv, although the other trials had finished. Here that job
gets one console line and the sweep goes on to its summary; its trial has no record, so running the sweep again
runs only that trial (resume). Each trial's result line, which the job writes to its log, is echoed on the console
as its job is collected. conf/hydra/launcher/slurm.yaml selects these classes.

Hydra instantiates launchers only from the `hydra_plugins` namespace, and imports every module in it when it
starts, so this module is here and defines nothing where hydra-submitit-launcher is not installed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf

try:
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
except ImportError:  # no `cluster` extra: peft-bench says which extra when hydra/launcher=slurm is asked for
    BaseSubmititLauncher = None


class _KeepGoing(BaseSubmititLauncher or object):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """The plugin's launch (same executor, parameters and job array), then each job's result or its loss."""
        assert self.config is not None
        executor = self._executor()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        job_params = [(list(overrides), "hydra.sweep.dir", initial_job_idx + i, f"job_id_for_{initial_job_idx + i}",
                       Singleton.get_state()) for i, overrides in enumerate(job_overrides)]
        jobs = executor.map_array(self, *zip(*job_params))
        return [_result(job, overrides) for job, overrides in zip(jobs, job_overrides)]

    def _executor(self):
        import submitit

        init_keys = {"submitit_folder", "max_num_timeout"}
        init = {"folder": self.params["submitit_folder"]}
        if "max_num_timeout" in self.params:
            init[f"{self._EXECUTOR}_max_num_timeout"] = self.params["max_num_timeout"]
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        shared = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{key if key in shared else f"{self._EXECUTOR}_{key}": value
                                      for key, value in self.params.items() if key not in init_keys})
        return executor


def _result(job, overrides: Sequence[str]) -> JobReturn:
    from submitit.core.utils import UncompletedJobError

    try:
        if _vanished(job):
            raise UncompletedJobError(f"job {job.job_id} left the queue without a result")
        returned = job.results()[0]
        _echo_last_line(job)
        return returned
    except UncompletedJobError:
        state = job.state  # e.g. CANCELLED, TIMEOUT, NODE_FAIL (sacct; UNKNOWN without accounting)
        print(f"peft-bench: job {job.job_id} ({' '.join(filter_overrides(overrides))}) ended {state} without a "
              "result; its trial has no record, so running the sweep again runs it", flush=True)
        lost: Any = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
        lost.return_value = None  # the sweep's summary counts records on disk; this trial has none
        return lost


def _echo_last_line(job) -> None:
    """The trial's last own line (its result, or `already finished`) from the job's log, so the console keeps one
    line per trial as under the local launchers: the job's output goes to its log file, not to this console."""
    try:
        log = job.stdout() or ""
    except OSError:
        return
    lines = [line for line in log.splitlines() if line.startswith("peft-bench: ")]
    if lines:
        print(lines[-1], flush=True)


def _vanished(job, poll_s: float = 2.0, confirm: int = 3) -> bool:
    """Waits for a SLURM job; True when it left the queue without a result and accounting never recorded it. An
    array task cancelled while still pending is such a job (measured on SLURM 22.05 with slurmdbd: `sacct -j`
    lists the array's other tasks, not that one), and submitit, reading UNKNOWN, would wait for it forever."""
    import subprocess
    import time

    if type(job).__name__ != "SlurmJob":
        return False  # local jobs: submitit watches the process itself
    missing = 0
    while not job.done():
        queued = subprocess.run(["squeue", "-h", "-j", str(job.job_id), "-o", "%T"], capture_output=True, text=True)
        gone = queued.returncode == 0 and not queued.stdout.strip() or "Invalid job id" in queued.stderr
        missing = missing + 1 if gone and job.state == "UNKNOWN" else 0
        if missing >= confirm:  # several polls apart: a finishing job is briefly in neither queue nor accounting
            return not job.paths.result_pickle.exists()
        time.sleep(poll_s)
    return False


if BaseSubmititLauncher is not None:
    class SlurmLauncher(_KeepGoing):
        _EXECUTOR = "slurm"

    class LocalLauncher(_KeepGoing):
        _EXECUTOR = "local"
