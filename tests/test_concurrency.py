"""What ran beside a trial: per phase the load average and the CPU share of other processes, the trials its sweep ran
at once, and `timed_alone`, the only trials speed and latency verdicts are drawn from.

.venv/bin/python -m pytest -q tests/test_concurrency.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.sweep.concurrency import announced, launcher_concurrency
from bench.trackers import load
from tests.conftest import FAST

ROOT = Path(__file__).parent.parent


def _scripted(monkeypatch, machine, own):
    """The machine's (busy, total) and the trial's own CPU seconds read these values in turn."""
    machine, own = iter(machine), iter(own)
    monkeypatch.setattr(load, "machine_cpu_seconds", lambda: next(machine))
    monkeypatch.setattr(load, "own_cpu_seconds", lambda pid: next(own))
    monkeypatch.setattr(load, "load_average_1m", lambda: 1.25)


def test_the_share_of_others_is_busy_time_less_the_trials_own_over_all_cpu_time(monkeypatch):
    # 2 cores, 1 s: 2 CPU-seconds in all, 1.5 busy, 0.5 of them the trial's: others took half the machine
    _scripted(monkeypatch, machine=[(10.0, 100.0), (11.5, 102.0)], own=[3.0, 3.5])
    meter = load.LoadMeter()
    meter.stop("train", meter.start())
    assert meter.metrics() == {"load_avg_1m_train": 1.25, "cpu_share_others_train": 0.5}


def test_a_phase_run_twice_adds_up_and_unreadable_counters_are_na(monkeypatch):
    _scripted(monkeypatch, machine=[(0.0, 0.0), (1.0, 2.0), (5.0, 10.0), (5.0, 12.0)], own=[0.0, 1.0, 1.0, 1.0])
    meter = load.LoadMeter()
    meter.stop("probe", meter.start())
    meter.stop("probe", meter.start())
    assert meter.share_others("probe") == 0.0  # busy 1 + 0 CPU-seconds, all the trial's own, over 4
    _scripted(monkeypatch, machine=[None, None], own=[None, None])
    unreadable = load.LoadMeter()
    unreadable.stop("train", unreadable.start())
    assert unreadable.share_others("train") is None and "cpu_share_others_train" not in unreadable.metrics()


def test_the_trials_own_cpu_time_counts_its_child_processes():
    meter = load.LoadMeter()
    started = meter.start()
    child = subprocess.Popen([sys.executable, "-c", "import time\nt = time.process_time()\n"
                              "while time.process_time() - t < 0.4: pass\nprint('burnt', flush=True)\n"
                              "time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        # the child burns 0.4 CPU-seconds (however long a busy machine makes that take), then waits, alive: read
        # as part of the trial
        assert child.stdout.readline().strip() == "burnt"
        meter.stop("train", started)
    finally:
        child.kill()
        child.wait()
    assert meter.own["train"] >= 0.35
    assert 0.0 <= meter.share_others("train") <= 1.0


@pytest.mark.parametrize(("shares", "count", "alone"), [
    ({"train": 0.02, "latency": 0.1}, 1, True),
    ({"train": 0.02, "latency": 0.1}, 2, False),  # a second trial of the sweep, whatever the counters say
    ({"train": 0.02, "latency": 0.4}, 1, False),  # something else ran while latency was timed
    ({"train": 0.02}, 1, False),  # latency not measured (a failed trial): no claim
    ({"train": None, "latency": 0.0}, 1, False),  # unreadable counters: no claim
])
def test_timed_alone_needs_one_trial_at_a_time_and_a_quiet_machine_in_train_and_latency(monkeypatch, shares, count,
                                                                                         alone):
    monkeypatch.setenv(load.CONCURRENT_ENV, f"{count}|test")
    metrics = {f"cpu_share_others_{phase}": share for phase, share in shares.items()}
    assert load.alone(metrics) == {"concurrent_trials": count, "concurrent_trials_source": "test",
                                   "timed_alone": alone}


def test_a_single_run_is_one_trial_at_a_time(monkeypatch):
    monkeypatch.delenv(load.CONCURRENT_ENV, raising=False)
    assert load.concurrent_trials() == (1, "single run")


@pytest.mark.parametrize(("launcher", "count"), [
    ({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}, 1),
    ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": 2}, 2),
    ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": -1},
     os.cpu_count()),
    ({"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
      "array_parallelism": 16}, 16),
    ({"_target_": "hydra_plugins.peft_bench_launchers.keep_going.SlurmLauncher", "array_parallelism": 8}, 8),
    ({"_target_": "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"}, None),
])
def test_each_launcher_says_how_many_trials_it_runs_at_once(monkeypatch, launcher, count):
    assert launcher_concurrency(launcher)[0] == count
    monkeypatch.delenv(load.CONCURRENT_ENV, raising=False)
    with announced(launcher):  # what the trials the sweep process starts inherit
        assert load.concurrent_trials()[0] == count
    assert load.concurrent_trials() == (1, "single run")  # and a trial run after it in this process is alone


def test_a_joblib_sweep_records_two_trials_at_once_and_never_timed_alone(tmp_path):
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    env.pop(load.CONCURRENT_ENV, None)
    # phases long enough for the kernel's CPU counters (10 ms ticks) to move: a shorter phase's share is n/a
    command = [sys.executable, "-m", "bench.cli", "-m", "model=tiny-bert", *FAST, "train.max_steps=12",
               "train.latency_batch_size=256", "train.max_length=128", "train.threads=1", "method=bitfit",
               "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"results_dir={tmp_path}", "sweep_name=t"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [path] = list(tmp_path.rglob("record.json"))
    m = json.loads(path.read_text())["metrics"]
    assert m["concurrent_trials"] == 2 and m["concurrent_trials_source"] == "joblib n_jobs=2"
    assert m["timed_alone"] is False
    assert m["seconds_train"] > 0.05 and m["seconds_latency"] > 0.05, (m["seconds_train"], m["seconds_latency"])
    for phase in ("train", "latency"):
        assert 0.0 <= m[f"cpu_share_others_{phase}"] <= 1.0 and m[f"load_avg_1m_{phase}"] >= 0.0
