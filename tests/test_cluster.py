"""Sweeps through real cluster engines: a one-node SLURM cluster (scripts/slurm-cluster.sh) and a local Ray.

pytest -m slow tests/test_cluster.py     (root; `make slurm` installs SLURM first, `make ray` the Ray environment;
                                          ~3 min on 2 cores; each engine's test skips, saying why, where it cannot run)
pytest tests/test_cluster.py             (the fast part: a job lost by the launcher, without any cluster)

The fixture starts the SLURM cluster only where none answers yet, and stops only what it started.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bench.results import record
from tests.conftest import FAST

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "scripts" / "slurm-cluster.sh"
RAY_PYTHON = Path(os.environ.get("PEFT_BENCH_RAY_VENV", ROOT / ".venv-ray")) / "bin" / "python"
SWEEP = ["-m", "model=tiny-bert", "method=lora,full", *FAST, "train.threads=1"]
SLURM = ["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1",
         "hydra.launcher.mem_gb=2", "hydra.launcher.timeout_min=15"]
SACCT_NOISE = "Bypassing sacct error"


def _node_idle() -> bool:
    try:
        done = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "idle" in done.stdout.split()


@pytest.fixture(scope="module")
def slurm_cluster():
    """An idle SLURM node: the one already running, or one this fixture starts (and stops afterwards)."""
    if _node_idle():
        yield
        return
    if shutil.which("slurmctld") is None:
        pytest.skip("SLURM is not installed (make slurm installs Debian's slurm-wlm, slurmdbd, munge, mariadb-server)")
    if os.geteuid() != 0:
        pytest.skip("starting a SLURM cluster needs root (scripts/slurm-cluster.sh start)")
    started = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=300)
    if started.returncode != 0:
        pytest.skip(f"the one-node SLURM cluster did not start: {started.stderr.strip().splitlines()[-1:]}")
    try:
        yield
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, timeout=120)


def peft_bench(python: Path | str, results: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    command = [str(python), "-m", "bench.cli", *SWEEP, f"results_dir={results}", "sweep_name=cluster", *args]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, timeout_s: float = 600) -> str:
    out, _ = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, out[-4000:]
    return out


def records(folder: Path) -> dict[str, Path]:
    """method -> record path, for every trial folder with a record."""
    return {json.loads(path.read_text())["config"]["method"]["name"]: path
            for path in folder.glob(f"*/{record.RECORD_NAME}")}


def cancel_second_job(sweep: Path, timeout_s: float = 300) -> str:
    """scancel the job array's second task once it runs (a trial needs seconds just to start, so it has no record
    yet): a trial killed mid-run, as a user or the scheduler would."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        for folder in sweep.glob(".submitit/*_1"):
            state = subprocess.run(["squeue", "-h", "-j", folder.name, "-o", "%T"], capture_output=True, text=True)
            if state.stdout.strip() == "RUNNING":
                subprocess.run(["scancel", folder.name], check=True, timeout=30)
                return folder.name
        time.sleep(0.2)
    raise AssertionError(f"the second job under {sweep}/.submitit was not seen running in {timeout_s} s")


@pytest.mark.slow
def test_a_slurm_sweep_loses_only_the_cancelled_trial_and_the_rerun_runs_only_it(slurm_cluster, tmp_path):
    sweep = tmp_path / "cluster"
    first = peft_bench(sys.executable, tmp_path, *SLURM)
    job = cancel_second_job(sweep)
    first_out = finish(first)
    assert f"job {job} (" in first_out and "CANCELLED" in first_out, first_out  # one line says which trial was lost
    assert "2 trials" not in first_out and "1 ok" in first_out, first_out  # the sweep still consolidated the other
    survived = records(sweep)
    assert len(survived) == 1, first_out
    [(kept_method, kept_path)] = survived.items()
    kept_bytes = kept_path.read_bytes()

    second_out = finish(peft_bench(sys.executable, tmp_path, *SLURM))
    assert "2 trials: 2 ok" in second_out and "(1 run now, 1 from earlier runs" in second_out, second_out
    assert kept_path.read_bytes() == kept_bytes  # the trial that had finished was not run again
    assert set(records(sweep)) == {"lora", "full"}
    table = pd.read_csv(sweep / "trials.csv")
    assert sorted(table["method"]) == ["full", "lora"] and set(table["status"]) == {"ok"}
    assert table["peak_mem_bytes"].gt(0).all()
    results = [line for line in first_out.splitlines() if ": ok, " in line]
    assert len(results) == 1 and f"__{kept_method}__" in results[0]  # the finished trial's line, from its job's log
    assert "already finished (ok)" in second_out and f"__{'full' if kept_method == 'lora' else 'lora'}__" in "".join(
        line for line in second_out.splitlines() if ": ok, " in line)
    for out in (first_out, second_out):
        assert SACCT_NOISE not in out  # accounting answers sacct, so submitit never falls back to guessing
        assert "Traceback" not in out


@pytest.mark.slow
def test_a_sweep_runs_on_a_local_ray(tmp_path):
    """The same 2-trial sweep through hydra-ray-launcher on a Ray started here (its own environment: `make ray`)."""
    if not RAY_PYTHON.exists():
        pytest.skip(f"no Ray environment at {RAY_PYTHON.parent.parent} (make ray; its extra cannot share .venv)")
    probe = subprocess.run([str(RAY_PYTHON), "-c", "import ray, hydra_plugins.hydra_ray_launcher"],
                           capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"the Ray environment cannot import ray and its launcher: {probe.stderr.strip()[-300:]}")
    out = finish(peft_bench(RAY_PYTHON, tmp_path, "hydra/launcher=ray-cluster", "hydra.launcher.ray.init.address=null",
                            "hydra.launcher.ray.remote.num_gpus=0", "hydra.launcher.ray.remote.num_cpus=1"))
    assert "2 trials: 2 ok" in out, out
    table = pd.read_csv(tmp_path / "cluster" / "trials.csv")
    assert sorted(table["method"]) == ["full", "lora"] and set(table["status"]) == {"ok"}


def test_a_job_that_ends_without_a_result_costs_only_its_trial(capsys):
    """A cancelled SLURM job (no result file) gives a line naming it, not an exception that ends the sweep."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from submitit.core.utils import UncompletedJobError

    from hydra_plugins.peft_bench_launchers.keep_going import _result

    class Cancelled:
        job_id, state = "41_1", "CANCELLED by 0"

        def results(self):
            raise UncompletedJobError("Job 41_1 (task: 0) has not produced any output (state: CANCELLED by 0)")

    returned = _result(Cancelled(), ["method=full", "seed=0"])
    assert returned.return_value is None  # what Hydra's sweeper reads: no exception, so the sweep goes on
    line = capsys.readouterr().out
    assert "job 41_1 (method=full seed=0) ended CANCELLED" in line


def test_each_collected_job_echoes_its_trials_last_line(capsys):
    """Under SLURM a trial prints into its job's log; the sweep's console still gets the trial's result line."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra_plugins.peft_bench_launchers.keep_going import _result

    class Finished:
        job_id, state = "42_0", "COMPLETED"

        def results(self):
            return ["the job's return"]

        def stdout(self):
            return ("peft-bench: [1/2, 9 s in] running m__t__lora__seed0\nsubmitit INFO job started\n"
                    "peft-bench: m__t__lora__seed0: ok, accuracy 0.9 (95% 0.8-0.95, n=40)\nsubmitit INFO done\n")

    assert _result(Finished(), ["method=lora"]) == "the job's return"
    assert capsys.readouterr().out == "peft-bench: m__t__lora__seed0: ok, accuracy 0.9 (95% 0.8-0.95, n=40)\n"
