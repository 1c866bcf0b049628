"""Console output of a trial and a sweep: one bar with the loss, no raw log dicts, no library warnings unless
verbose=true, the sweep line's i/N and ETA, and one line per finished sweep trial (a single run: the full summary).

.venv/bin/python -m pytest -q tests/test_progress.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
import transformers
import yaml
from hydra import compose, initialize_config_dir
from transformers.trainer_callback import PrinterCallback, ProgressCallback

import bench.cli.run  # noqa: F401 - registers the config schemas and resolvers that composing needs
from bench.results import console
from bench.results import record as records
from bench.launch import worker
from bench.sweep import progress
from bench.trial import progress as bars
from tests.conftest import FAST, compose_raw

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
BAR_LABEL = "lora on tiny-bert"


def run_trial(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    """A tiny-model trial as a user starts it (its own process, so the warning filters are the real ones)."""
    args = [sys.executable, "-m", "bench.cli", "model=tiny-bert", "train.threads=1", f"results_dir={tmp_path}",
            *FAST, *extra]
    env = {**os.environ, "PYTHONWARNINGS": ""}  # the user's default filters, not pytest's
    return subprocess.run(args, check=False, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def quiet_and_verbose(tmp_path_factory):
    """Both runs at once: each is mostly one core waiting on imports and the data."""
    with ThreadPoolExecutor(2) as pool:
        quiet = pool.submit(run_trial, tmp_path_factory.mktemp("quiet"))
        verbose = pool.submit(run_trial, tmp_path_factory.mktemp("verbose"), "verbose=true")
        return quiet.result(), verbose.result()


def test_default_trial_prints_one_bar_the_summary_and_no_warning(quiet_and_verbose):
    quiet, _ = quiet_and_verbose
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    console = quiet.stdout + quiet.stderr
    assert "Warning" not in console, console
    assert "{'loss'" not in console and "'train_runtime'" not in console
    bars = [line for line in quiet.stderr.replace("\r", "\n").splitlines() if line.startswith(BAR_LABEL)]
    assert bars and all("/4 [" in line for line in bars), quiet.stderr  # one bar over the 4 training steps
    assert quiet.stderr.count(f"{BAR_LABEL}:   0%") == 1
    assert "loss=" in bars[-1] and "4/4" in bars[-1]
    assert "record: " in quiet.stdout and quiet.stdout.rstrip().endswith("record.json")
    assert len(console.replace("\r", "").splitlines()) <= 24  # one screen


def test_verbose_shows_library_warnings_and_the_logged_losses(quiet_and_verbose):
    _, verbose = quiet_and_verbose
    assert verbose.returncode == 0, verbose.stderr[-2000:]
    assert "step 1: loss " in verbose.stderr
    assert "Loading weights" not in verbose.stderr  # one bar even then: the loaders' bars stay off
    assert "{'loss'" not in verbose.stdout + verbose.stderr


@pytest.mark.parametrize("verbose", [False, True])
def test_library_warnings_show_only_verbose_and_the_harnesss_own_always(verbose):
    """Which libraries warn changes with their versions, so the filters are held to warnings raised here."""
    level = transformers.logging.get_verbosity()
    try:
        with warnings.catch_warnings(record=True) as caught:
            bars.quiet_libraries(verbose)
            warnings.warn_explicit("a deprecated argument", FutureWarning, "peft/tuners/x.py", 1,
                                   module="peft.tuners.x")
            warnings.warn_explicit("a figure is n/a", UserWarning, "bench/trial/x.py", 1, module="bench.trial.x")
    finally:
        transformers.logging.set_verbosity(level)
    shown = [str(w.message) for w in caught]
    assert shown == (["a deprecated argument", "a figure is n/a"] if verbose else ["a figure is n/a"])


def _state(step: int) -> SimpleNamespace:
    return SimpleNamespace(is_world_process_zero=True, max_steps=4, global_step=step)


def test_bar_takes_the_loss_into_its_postfix(capsys):
    bar = bars.TrialBar("lora on tiny-bert")
    bar.on_train_begin(None, _state(0), None)
    bar.on_step_end(None, _state(2), None)
    bar.on_log(None, _state(2), None, logs={"loss": 1.23456, "grad_norm": 0.5})
    assert bar.bar.n == 2 and bar.bar.postfix == "loss=1.2346"
    bar.on_train_end(None, _state(4), None)
    assert "grad_norm" not in capsys.readouterr().err


def test_attach_replaces_the_trainers_console_callbacks():
    class Trainer:
        def __init__(self):
            self.callbacks = [PrinterCallback, ProgressCallback, "throughput"]

        def remove_callback(self, cls):
            self.callbacks.remove(cls)

        def add_callback(self, callback):
            self.callbacks.append(callback)

    with_bar, without = Trainer(), Trainer()
    bars.attach(with_bar, "x", show_bar=True)
    bars.attach(without, "x", show_bar=False)
    assert without.callbacks == ["throughput"]
    assert with_bar.callbacks[0] == "throughput" and isinstance(with_bar.callbacks[1], bars.TrialBar)


OPTUNA_TRIALS = yaml.safe_load((CONF_DIR / "hydra" / "sweeper" / "optuna-lora.yaml").read_text())["n_trials"]


@pytest.mark.parametrize(("command_line", "trials"), [
    (["sweep=lora-rank"], 6 * 4),  # the preset's r x learning-rate grid
    (["sweep=lora-rank", "train.learning_rate=1e-3"], 6),  # the command line's value replaces the preset's list
    (["sweep=quick", "method=lora,full", "seed=range(3)"], 2 * 3),
    (["method=glob(*)", "train.max_steps=5"], len(list((CONF_DIR / "method").glob("*.yaml")))),
    (["sweep=lora-rank-optuna"], OPTUNA_TRIALS),
])
def test_count_trials_of_a_sweep(command_line, trials):
    from omegaconf import open_dict

    preset = [arg for arg in command_line if arg.startswith("sweep=")]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        composed = compose(config_name="config", overrides=preset, return_hydra_config=True)
        with open_dict(composed):
            composed.hydra.overrides.task = command_line  # what a multirun's sweep process sees
        assert progress.count_trials(composed) == trials


def test_sweep_line_gives_position_and_eta(tmp_path, monkeypatch):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "record.json").write_text("{}")
    started = min((tmp_path / n / "record.json").stat().st_mtime for n in ("a", "b")) - 1
    monkeypatch.setenv(progress.STARTED_ENV, repr(started))
    monkeypatch.setenv(progress.TOTAL_ENV, "10")
    monkeypatch.setattr(progress, "_job_number", lambda: 3)
    # 2 trials finished in 60 s: 30 s a trial, 8 still to run (this one included)
    assert progress.position(tmp_path / "c", now=started + 60) == "[3/10, 1.0 min in, ETA 4.0 min] "
    monkeypatch.setattr(progress, "_job_number", lambda: None)
    assert progress.position(tmp_path / "c") == ""  # a single run has no sweep line


MEASURED = {"quality": 0.9164677, "quality_metric": "accuracy", "quality_ci_low": 0.886042, "quality_ci_high": 0.939326,
            "n_eval": 419, "peak_mem_bytes": 792764416, "train_seconds": 95.2204, "trainable_params": 15749}
IDENTITY = {"method": "ia3", "family": "adapter", "model": "minilm-l6", "task": "bbc-topic", "seed": 0}
NAME = "minilm-l6__bbc-topic__ia3__seed0"


def test_sweep_trial_line_names_status_quality_interval_memory_and_time():
    line = console.trial_line({"status": "ok", "metrics": MEASURED, "error": None}, NAME)
    assert line == (f"peft-bench: {NAME}: ok, accuracy 0.916 (95% 0.886-0.939, n=419), peak 756.0 MiB, "
                    "train 95.2 s")
    no_interval = console.trial_line({"status": "ok", "metrics": {**MEASURED, "quality_ci_low": None}}, NAME)
    assert "accuracy 0.916 (95% n/a, n=419)" in no_interval  # a metric without an interval says so, never 0


def test_a_distributed_trials_summary_gives_every_ranks_peak():
    ranks = {"world_size": 2, "peak_mem_bytes_rank0": 605286400, "peak_mem_bytes_rank1": 667783168, "peak_mem_rank": 1}
    record = {"status": "ok", "identity": IDENTITY, "metrics": {**MEASURED, **ranks}, "error": None}
    assert console.summary(record).splitlines()[-1].split() == [
        "ranks", "2:", "peak", "577.2", "MiB", "/", "636.8", "MiB", "(memory", "above:", "rank", "1's)"]
    one_process = {**record, "metrics": MEASURED}
    assert "ranks" not in console.summary(one_process)


def test_sweep_trial_line_of_a_failure_says_why():
    error = {"phase": "train", "type": "NonFiniteLoss", "message": "loss is nan at step 3"}
    line = console.trial_line({"status": "failed", "metrics": {}, "error": error}, NAME)
    assert line == f"peft-bench: {NAME}: failed [train] NonFiniteLoss: loss is nan at step 3"


def test_a_sweep_trial_prints_one_line_where_a_single_run_prints_its_summary(tmp_path, monkeypatch, capsys):
    """The worker (a sweep's trial process) around a stand-in trial: one line on stdout, the record written."""
    from bench.launch import trial

    raw = compose_raw("model=tiny-bert", "method=ia3")
    folder = tmp_path / NAME
    folder.mkdir()
    (folder / worker.CONFIG_NAME).write_text(json.dumps(raw))
    finished = records.TrialRecord(status="ok", config=raw, key="k", identity=IDENTITY, metrics=MEASURED)
    monkeypatch.setattr(trial, "run_trial", lambda cfg, progress, trial_dir: finished)
    for guard in ("die_with_parent", "die_with_sweep"):  # they would tie the test process to its parent
        monkeypatch.setattr(worker, guard, lambda: None)
    worker.main(str(folder))
    printed = capsys.readouterr().out.splitlines()
    assert printed == [console.trial_line(finished, NAME)] and (folder / records.RECORD_NAME).is_file()
    assert len(console.summary(finished).splitlines()) == 4  # a single run: a line for each figure it has
