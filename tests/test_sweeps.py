"""Sweeps survive: failed trials are recorded and the sweep goes on, resume runs only what is missing, records are
never torn, and the sweep gives the same table under every launcher.

pytest tests/test_sweeps.py        (~2-3 min on 2 cores: real `peft-bench -m` processes on tiny-bert, FAST sizes)

Failures are injected with PEFT_BENCH_FAULT (bench/sweep/faults.py, test-only), read by the trial's worker process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from bench.cli.run import trial_name
from bench.common import files
from bench.config import CONF_DIR
from bench.results import record
from bench.sweep import resume
from bench.sweep.faults import ENV as FAULT_ENV
from tests.conftest import FAST

ROOT = Path(__file__).parent.parent
PRESETS = sorted(p.stem for p in (CONF_DIR / "sweep").glob("*.yaml"))
OK, RAISE, NAN, KILL = "lora", "bitfit", "full", "prompt-tuning"  # one method per fate
FAULTS = f"{RAISE}=raise,{NAN}=nan,{KILL}=sigkill"
IDENTITY = ["method", "model", "task", "seed", "status", "error_phase", "error_type"]


def peft_bench(results: Path, *args: str, faults: str = "", name: str = "t") -> subprocess.CompletedProcess:
    """`peft-bench -m model=tiny-bert <FAST> ARGS` as a real process, results under `results/NAME/`."""
    env = {**os.environ, FAULT_ENV: faults, "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "bench.cli", "-m", "model=tiny-bert", *FAST, "train.threads=1",
               f"results_dir={results}", f"sweep_name={name}", *args]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def starts_trial(line: str) -> bool:
    """The sweep's line as a trial starts: `peft-bench: [2/5, 0.3 min in, ETA 1.0 min] running NAME`."""
    return re.match(r"peft-bench: (\[[^]]*\] )?running ", line) is not None


def records(folder: Path) -> dict[str, dict]:
    """method -> record of every trial folder (each record must be complete JSON)."""
    found = {}
    for path in folder.glob(f"*/{record.RECORD_NAME}"):
        payload = json.loads(path.read_text())  # never torn: a partial file would not parse
        found[payload["identity"]["method"]] = payload | {"_path": path}
    return found


@pytest.fixture(scope="module")
def faulty_sweep(tmp_path_factory):
    """Five trials: two fine, one raising, one with a NaN loss, one SIGKILLed."""
    results = tmp_path_factory.mktemp("sweeps")
    done = peft_bench(results, f"method={OK},adapter-houlsby,{RAISE},{NAN},{KILL}", faults=FAULTS)
    return results / "t", done


def test_failed_trials_are_recorded_and_the_sweep_goes_on(faulty_sweep):
    folder, done = faulty_sweep
    found = records(folder)
    assert set(found) == {OK, "adapter-houlsby", RAISE, NAN, KILL}
    assert found[OK]["status"] == found["adapter-houlsby"]["status"] == "ok"
    raised = found[RAISE]
    assert (raised["status"], raised["error"]["phase"], raised["error"]["type"]) == ("failed", "train", "RuntimeError")
    assert "injected fault" in raised["error"]["message"]
    killed = found[KILL]
    assert (killed["status"], killed["error"]["phase"], killed["error"]["type"]) == ("failed", "process", "ProcessDied")
    assert "SIGKILL" in killed["error"]["message"]
    assert killed["metrics"]["peak_mem_bytes"] > 0  # the memory the dead trial had reached
    assert "peft-bench: sweep t: 5 trials: 2 ok, 3 failed, 0 skipped" in done.stdout
    table = pd.read_csv(folder / "trials.csv")  # consolidated when the sweep ended
    assert sorted(table["method"]) == sorted(found) and (table["status"] == "failed").sum() == 3
    assert pd.read_parquet(folder / "trials.parquet").shape == table.shape
    assert not list(folder.rglob("*.tmp"))  # no temp file left behind


def test_nan_loss_fails_the_trial_in_phase_train(faulty_sweep):
    nan = records(faulty_sweep[0])[NAN]
    assert (nan["status"], nan["error"]["phase"], nan["error"]["type"]) == ("failed", "train", "NonFiniteLoss")


def test_a_killed_sweep_run_again_runs_only_what_is_missing(faulty_sweep):
    """Run again without faults, SIGKILL the sweep after its first new trial, run again: each failed trial runs
    once more and ends ok; finished ones never run again; the killed sweep leaves no trial process behind."""
    folder, _ = faulty_sweep
    before = records(folder)
    args = [f"method={OK},adapter-houlsby,{RAISE},{NAN},{KILL}"]  # the same sweep, no faults now
    command = [sys.executable, "-m", "bench.cli", "-m", "model=tiny-bert", *FAST, "train.threads=1",
               f"results_dir={folder.parent}", "sweep_name=t", *args]
    env = {**os.environ, FAULT_ENV: f"{NAN}=hang"}  # the trial to kill the sweep in: under way until killed
    sweep = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    for line in sweep.stdout:  # the first trial to run again (bitfit) has finished and the next one started...
        if starts_trial(line) and f"__{NAN}__" in line:
            break
    time.sleep(1.5)  # ...and is well under way
    trials = psutil.Process(sweep.pid).children(recursive=True)
    sweep.kill()
    sweep.wait()
    gone, alive = psutil.wait_procs(trials, timeout=20)
    assert not alive, "a trial process outlived the sweep that started it"
    mid = records(folder)
    assert mid[RAISE]["status"] == "ok" and NAN not in mid  # the trial killed with the sweep left no record
    done = peft_bench(folder.parent, *args)
    after = records(folder)
    for method in (OK, "adapter-houlsby", RAISE):  # finished before: not run, record untouched
        assert after[method]["finished_at"] == mid[method]["finished_at"]
    for method in (OK, "adapter-houlsby"):
        assert (after[method]["finished_at"], after[method]["_path"]) == (before[method]["finished_at"],
                                                                          before[method]["_path"])
    for method in (RAISE, NAN, KILL):  # failed: run again, in the same folder
        assert after[method]["status"] == "ok" and after[method]["_path"] == before[method]["_path"]
    assert done.stdout.count("already finished (ok), not run again") == 3
    assert "5 trials: 5 ok, 0 failed, 0 skipped (2 run now, 3 from earlier runs" in done.stdout


def test_a_killed_joblib_sweep_leaves_no_trial_running(tmp_path):
    """joblib's loky workers outlive a killed sweep; the trial they started must not (it watches the sweep)."""
    command = [sys.executable, "-m", "bench.cli", "-m", "model=tiny-bert", *FAST, "train.threads=1",
               f"results_dir={tmp_path}", "sweep_name=t", f"method={NAN}", "hydra/launcher=joblib"]
    env = {**os.environ, FAULT_ENV: f"{NAN}=hang"}
    sweep = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        for line in sweep.stdout:
            if starts_trial(line):
                break
        # sweep -> loky worker -> trial (forked: same command line as the worker), so: the grandchildren
        def grandchildren():
            return [p for p in psutil.Process(sweep.pid).children(recursive=True) if p.ppid() != sweep.pid]

        deadline = time.monotonic() + 60  # the worker imports torch & co. before it forks the trial
        while not (trials := grandchildren()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert trials, "the trial process was not found"
        time.sleep(1.5)  # well under way
    finally:
        sweep.kill()
        sweep.wait()
    gone, alive = psutil.wait_procs(trials, timeout=20)
    assert not alive, "a trial process outlived the sweep that started it"
    assert not list(tmp_path.rglob("record.json"))


WATCHER = """
import time
from bench.launch import lifetime
lifetime.die_with_sweep()
time.sleep(30)
"""


@pytest.mark.parametrize("same_slurm_job", [True, False])
def test_a_trial_ends_with_its_sweep_only_where_the_sweep_is_the_same_process(same_slurm_job):
    """The watch ends a trial whose sweep is gone (exit 1 within a few seconds), but never one whose sweep lives in
    another SLURM job (or boot, or pid namespace): there the scheduler decides."""
    from bench.launch.lifetime import SWEEP_ENV, process_identity

    sweep = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    identity = process_identity(sweep.pid)
    env = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"} | {SWEEP_ENV: identity}
    if not same_slurm_job:
        env["SLURM_JOB_ID"] = "4242"  # the trial runs in a job of its own; the sweep ran outside SLURM
    trial = subprocess.Popen([sys.executable, "-c", WATCHER], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    sweep.wait()
    try:
        code = trial.wait(timeout=15)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        trial.kill()
    if same_slurm_job:
        assert code == 1 and "the sweep process" in trial.stderr.read()
    else:
        assert code is None  # still running when its sweep had long gone


def test_a_live_sweep_keeps_its_identity_when_the_wall_clock_moves(monkeypatch):
    """A process's identity must not follow the wall clock: psutil's create_time adds a boot time read from it,
    which moved by a second a minute on a VM whose clock was being adjusted, and every trial of a live sweep then
    ended as if its sweep had died."""
    from bench.launch import lifetime

    before = lifetime.process_identity()
    shift = iter(range(1, 100))
    monkeypatch.setattr(psutil.Process, "create_time", lambda self: 1.7e9 + next(shift))
    monkeypatch.setattr(psutil, "boot_time", lambda: 1.7e9 + next(shift))
    assert lifetime.process_identity() == before == lifetime.process_identity()
    assert json.loads(before)[-1] != json.loads(lifetime.process_identity(1))[-1]  # init started long before


def test_config_error_in_the_sweep_process_is_recorded(tmp_path):
    """from_dict fails in the multirun parent itself for swept values: a failed record with phase config, one row
    per trial, and the sweep goes on (a bad value every trial shares stops the sweep first: tests/test_bad_input)."""
    done = peft_bench(tmp_path, f"method={OK}", "train.warmup_steps=10,11")
    table = pd.read_csv(tmp_path / "t" / "trials.csv")
    assert len(table) == 2
    assert set(table["status"]) == {"failed"} and set(table["error_phase"]) == {"config"}
    assert table["error_message"].str.contains("train.warmup_steps").all()
    assert "2 trials: 0 ok, 2 failed" in done.stdout


# slow (four sweeps of two trials, ~35 s): the fast tests already run forked trials and joblib sweeps; this one
# compares two ways of running the same trials
@pytest.mark.slow
def test_joblib_and_submitit_local_give_the_same_table(tmp_path):
    methods = f"method={OK},{KILL}"  # the trial's own process under loky workers and submitit jobs, killed or not
    peft_bench(tmp_path, methods, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", faults=FAULTS, name="joblib")
    peft_bench(tmp_path, methods, "hydra/launcher=submitit_local", faults=FAULTS, name="submitit")
    tables = [pd.read_csv(tmp_path / name / "trials.csv")[IDENTITY].sort_values("method").reset_index(drop=True)
              for name in ("joblib", "submitit")]
    pd.testing.assert_frame_equal(*tables)
    assert list(tables[0]["status"]) == ["ok", "failed"]  # lora, prompt-tuning


# slow (four sweeps of two trials, ~35 s): the fast tests already run forked trials and joblib sweeps; this one
# compares two ways of running the same trials
@pytest.mark.slow
def test_forked_trials_match_fresh_interpreter_trials(tmp_path, monkeypatch):
    """Trials forked from the sweep process (libraries imported once) and trials in a fresh interpreter each
    (PEFT_BENCH_NO_FORK) give the same table: same fates, same trained parameters, same quality."""
    from bench.launch.isolation import NO_FORK_ENV

    methods = f"method={OK},{KILL}"
    peft_bench(tmp_path, methods, faults=FAULTS, name="forked")
    monkeypatch.setenv(NO_FORK_ENV, "1")
    peft_bench(tmp_path, methods, faults=FAULTS, name="spawned")
    columns = IDENTITY + ["trainable_params", "quality"]
    tables = [pd.read_csv(tmp_path / name / "trials.csv").reindex(columns=columns).sort_values("method")
              .reset_index(drop=True) for name in ("forked", "spawned")]
    pd.testing.assert_frame_equal(*tables)
    assert list(tables[0]["status"]) == ["ok", "failed"]  # lora, prompt-tuning (SIGKILLed)


@pytest.mark.skipif(not importlib.util.find_spec("hydra_plugins.hydra_ray_launcher"),
                    reason="hydra-ray-launcher (extra `ray`) is not installed")
def test_ray_launcher_runs_a_sweep(tmp_path):
    peft_bench(tmp_path, f"method={OK},{RAISE}", "hydra/launcher=ray-cluster", "hydra.launcher.ray.init.address=null",
               "hydra.launcher.ray.remote.num_gpus=0", "hydra.launcher.ray.remote.num_cpus=1", faults=FAULTS)
    table = pd.read_csv(tmp_path / "t" / "trials.csv").set_index("method")
    assert (table.loc[OK, "status"], table.loc[RAISE, "status"]) == ("ok", "failed")


def test_a_trial_past_its_timeout_is_killed_and_recorded(tmp_path, monkeypatch):
    from bench.launch.isolation import run_isolated
    from tests.conftest import trial_config

    monkeypatch.setenv(FAULT_ENV, f"{OK}=hang")  # the trial sleeps at its first training step
    result = run_isolated(trial_config("model=tiny-bert", f"method={OK}"), tmp_path / "trial", timeout=20)
    error = result["error"]
    assert (result["status"], error["type"], error["phase"]) == ("failed", "TrialTimeout", "process")
    assert record.read(tmp_path / "trial" / record.RECORD_NAME)["error"]["type"] == "TrialTimeout"


WRITER = """
import sys, pandas as pd
from pathlib import Path
from bench.common import files
from bench.results import consolidate
folder = Path(sys.argv[1])
rows = pd.DataFrame({"method": ["m"] * 20000, "x": range(20000)})
payload = {"status": "ok", "blob": ["x" * 100] * 20000}
print("ready", flush=True)
while True:
    files.write_atomic(folder / "record.json", payload)
    consolidate.write(rows, folder)
"""


def test_records_and_tables_are_never_torn_when_the_writer_is_killed(tmp_path):
    """SIGKILL a process that keeps rewriting a 2 MB record and a table: what is there always parses whole."""
    for delay in (0.05, 0.13, 0.31, 0.57):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE)
        assert writer.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        if (tmp_path / "record.json").exists():
            assert len(json.loads((tmp_path / "record.json").read_text())["blob"]) == 20000
        if (tmp_path / "trials.csv").exists():
            assert len(pd.read_csv(tmp_path / "trials.csv")) == 20000
        if (tmp_path / "trials.parquet").exists():
            assert len(pd.read_parquet(tmp_path / "trials.parquet")) == 20000
    assert (tmp_path / "record.json").exists()  # some writes did finish


def test_resume_never_overwrites_a_finished_record_of_another_config(tmp_path):
    folder = tmp_path / "lora__seed0"
    assert resume.place(folder, "aaaa1111") == (folder, None)  # empty: run here
    files.write_atomic(folder / record.RECORD_NAME, {"status": "ok", "key": "aaaa1111"})
    assert resume.place(folder, "aaaa1111")[1]["key"] == "aaaa1111"  # finished: skip
    assert resume.place(folder, "aaaa1111", force=True) == (folder, None)  # force: run again, same folder
    other = folder.with_name("lora__seed0@bbbb2222")
    assert resume.place(folder, "bbbb2222cc") == (other, None)  # same name, other config: its own folder
    files.write_atomic(other / record.RECORD_NAME, {"status": "ok", "key": "bbbb2222cc"})
    assert resume.place(folder, "bbbb2222cc")[0] == other  # and found there next time
    files.write_atomic(folder / record.RECORD_NAME, {"status": "failed", "key": "aaaa1111"})
    assert resume.place(folder, "aaaa1111") == (folder, None)  # failed: run again
    assert resume.place(folder, "cccc3333") == (folder, None)  # an unfinished record of another config is no loss


def test_trial_names_are_one_legal_folder():
    assert trial_name("m", "t", "lora", 0, "") == "m__t__lora__seed0"
    assert trial_name("m", "t", "lora", 1, "++train.x=1,+a.b=2") == "m__t__lora__seed1__train.x=1,a.b=2"
    assert "/" not in trial_name("org/model", "t", "lora", 0, "model.name_or_path=org/model")
    files = "task.dataset.data_files.test=/tmp/x/test.csv,task.dataset.data_files.train=/tmp/x/train.csv"
    named = trial_name("minilm-l6", "reviews", "lora", 0, files + ",task.name=reviews")
    assert named == "minilm-l6__reviews__lora__seed0"
    assert trial_name("gemma", "t", "lora", 0, "model.name_or_path=/data/gemma,train.max_steps=5") == \
        "gemma__t__lora__seed0__train.max_steps=5"  # paths stay in the config and its key, never in a name
    assert trial_name("m", "t", "lora", 0, "method.params.target_modules=[query,value],train.x=1") == \
        "m__t__lora__seed0__method.params.target_modules=[query,value],train.x=1"
    long = ",".join(f"train.key_{i}=value" for i in range(40))
    names = {trial_name("m", "t", "lora", 0, long), trial_name("m", "t", "lora", 0, long + "x")}
    assert len(names) == 2 and all(len(n.encode()) < 200 for n in names)


def _sweep_jobs(preset: str, *overrides: str) -> list[list[str]]:
    """The jobs Hydra's basic sweeper makes of a preset plus command-line overrides (without running them)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"sweep={preset}"], return_hydra_config=True)
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.sweep_name == preset
    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()] + list(overrides)
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path

    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(CONF_DIR)))
    parsed = OverridesParser.create(config_loader=loader).parse_overrides(params)
    return BasicSweeper.split_arguments(parsed, None)[0]


@pytest.mark.parametrize("preset", [p for p in PRESETS if p != "lora-rank-optuna"])
def test_every_preset_sweeps_seeds_with_one_job_per_seed(preset):
    jobs = _sweep_jobs(preset)
    assert jobs and not any("method=schema" in job for job in jobs)
    seeded = _sweep_jobs(preset, "seed=range(2)")
    assert len(seeded) == 2 * len({tuple(o for o in job if not o.startswith("seed=")) for job in jobs})
    assert {o for job in seeded for o in job if o.startswith("seed=")} == {"seed=0", "seed=1"}


def test_the_latency_pass_keeps_each_settings_shapes_and_trains_four_steps():
    """Its figures compare with the study's: the same model, batch and input length per setting; 4 steps each."""
    from tests.conftest import trial_config

    jobs = _sweep_jobs("latency")
    assert len(jobs) == 2 * 5 * 3
    for job in (jobs[0], jobs[-1]):
        setting = next(o.split("=", 1)[1] for o in job if o.startswith("setting="))
        cfg, study = trial_config("sweep=latency", *job, fast=False), trial_config(f"setting={setting}", fast=False)
        assert cfg.train.max_steps == 4 and cfg.train.threads == 1
        assert (cfg.model.name, cfg.train.batch_size, cfg.train.max_length) == (
            study.model.name, study.train.batch_size, study.train.max_length)
        assert cfg.train.latency_batch_size == study.train.latency_batch_size


def test_quick_sweeps_every_family_and_the_optuna_variant_composes_without_its_plugin():
    from bench import methods

    quick = {job[0].split("=", 1)[1] for job in _sweep_jobs("quick")}
    assert quick <= {p.stem for p in (CONF_DIR / "method").glob("*.yaml")}
    assert {methods.get(name).family for name in quick} == set(methods.FAMILIES)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["sweep=lora-rank-optuna"], return_hydra_config=True)
    assert cfg.hydra.sweeper.direction == "maximize" and cfg.method.params.alpha == cfg.method.params.r
    assert cfg.train.eval_every == cfg.train.max_steps  # every trial gets the validation score Optuna maximises


def test_a_search_maximises_validation_quality_never_test():
    from bench.cli.run import FAILED_OBJECTIVE, objective

    scored = {"status": "ok", "metrics": {"quality": 0.99, "val_quality": 0.71}}
    assert objective(scored) == 0.71
    assert objective({"status": "ok", "metrics": {"quality": 0.99}}) == FAILED_OBJECTIVE  # no validation score
    assert objective({**scored, "status": "failed"}) == FAILED_OBJECTIVE


def test_launcher_configs_print(tmp_path):
    """`peft-bench sweep=quick hydra/launcher=slurm --cfg hydra` prints the GPU and time options."""
    done = subprocess.run([sys.executable, "-m", "bench.cli", "sweep=quick", "hydra/launcher=slurm", "--cfg", "hydra"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for option in ("gpus_per_node: ${train.nproc}", "timeout_min: 120", "partition:", "cpus_per_task:", "mem_gb:",
                   "SlurmLauncher"):
        assert option in done.stdout
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        ray = compose(config_name="config", overrides=["hydra/launcher=ray-cluster"], return_hydra_config=True)
        slurm4 = compose(config_name="config", return_hydra_config=True,
                         overrides=["hydra/launcher=slurm", "train.distributed=ddp", "train.nproc=4"])
    assert ray.hydra.launcher.ray.remote.num_gpus == 1  # one GPU per trial process by default
    assert slurm4.hydra.launcher.gpus_per_node == 4  # a 4-process trial asks for 4 GPUs
