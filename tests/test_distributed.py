"""Distributed trials on CPU (gloo): FSDP shards weights, gradients and optimizer state; the gathered checkpoint is the
trained model; a dead rank fails its trial and only it; bad values stop before training; cluster presets ask for one
GPU per process.

pytest tests/test_distributed.py -x            (~1.5 min on 2 cores: tiny-llama, FAST sizes, 2 real rank processes)
pytest -m slow tests/test_distributed.py -x    (a rank killed mid-training; a trial past its timeout: ~2 min)
pytest -m gpu tests/test_distributed.py        (NCCL on a GPU machine: train.nproc=1, ddp and fsdp)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch

from bench import trial
from bench.config import ConfigError
from bench.distributed import gather
from bench.launch import ranks as launch
from bench.distributed import files
from bench.results import record
from bench.launch.trial import run_trial
from tests.conftest import FAST, trial_config

ROOT = Path(__file__).parent.parent
TINY = ("model=tiny-llama", "train.threads=1")
STATE = ("mem_weights_bytes", "mem_grads_bytes", "mem_optimizer_bytes")


def state_bytes(metrics: dict, suffix: str = "") -> int:
    return sum(metrics[f"{part}{suffix}"] for part in STATE)


@pytest.fixture(scope="module")
def fsdp_full(tmp_path_factory):
    """Full fine-tuning of tiny-llama over 2 FSDP ranks, its checkpoint kept, beside the same trial in one process."""
    folder = tmp_path_factory.mktemp("fsdp")
    sharded = run_trial(trial_config(*TINY, "method=full", "train.distributed=fsdp", "train.nproc=2",
                                     "train.save_checkpoint=true", "train.max_steps=6"),  # steps 4-5: profiled
                        progress=False, trial_dir=folder)
    single = run_trial(trial_config(*TINY, "method=full"), progress=False)
    return sharded, single, folder


def test_fsdp_shards_weights_grads_and_optimizer_state_in_half(fsdp_full):
    sharded, single, _ = fsdp_full
    assert sharded.status == record.OK, sharded.error
    metrics = sharded.metrics
    assert metrics["world_size"] == 2 and metrics["distributed"] == "fsdp"
    for rank in (0, 1):
        assert metrics[f"peak_mem_bytes_rank{rank}"] > 0
        share = state_bytes(metrics, f"_rank{rank}") / state_bytes(single.metrics)
        assert 0.45 < share < 0.56, (rank, share)  # half, plus shard padding and unsharded buffers
    assert metrics["peak_mem_bytes"] == max(metrics["peak_mem_bytes_rank0"], metrics["peak_mem_bytes_rank1"])
    assert metrics["train_tokens_per_s"] > 0 and metrics["quality"] is not None
    assert 0 < metrics["comm_share"] <= 1 and metrics["comm_share"] == max(metrics["comm_share_rank0"],
                                                                           metrics["comm_share_rank1"])
    assert metrics["checkpoint_bytes"] == single.metrics["checkpoint_bytes"]  # the whole model, as one process saves


def test_the_gathered_checkpoint_reloads_to_the_trained_model(fsdp_full):
    sharded, _, folder = fsdp_full
    assert sharded.metrics["gathered_max_abs_diff"] < 1e-5  # the gathered model answers as the sharded one did
    from safetensors.torch import load_file

    from bench import methods, models

    cfg = trial_config(*TINY, "method=full")
    base = trial.load_base(cfg)
    model = methods.get("full").apply(base.model, methods.get("full").build_config({}), base.arch)
    saved = load_file(str(folder / "checkpoint" / "model.safetensors"))
    assert set(saved) == {name for name, p in model.named_parameters() if p.requires_grad}
    model.load_state_dict(saved, strict=False)
    kept = load_file(str(folder / launch.RUN_DIR_NAME / gather.OUTPUTS_NAME))
    with torch.no_grad():
        logits = model.eval()(input_ids=kept["input_ids"], attention_mask=kept["attention_mask"]).logits
    assert torch.allclose(logits[:, : kept["logits"].shape[1]], kept["logits"], atol=1e-5)
    assert models is not None


@pytest.mark.parametrize("overrides, key", [
    (("train.nproc=0",), "train.nproc"),
    (("train.distributed=zero3",), "train.distributed"),
    (("train.nproc=2",), "train.nproc"),  # two processes need ddp or fsdp
    (("train.distributed=ddp", "train.nproc=3"), "train.batch_size"),  # FAST's batch of 4 does not split in 3
])
def test_bad_values_name_the_key_and_value(overrides, key):
    with pytest.raises(ConfigError, match=rf"`{key}`"):
        trial_config(*overrides)


def test_more_processes_than_gpus_stops_before_loading(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    cfg = trial_config("train.distributed=fsdp", "train.nproc=2")
    with pytest.raises(ConfigError, match=r"`train.nproc` \(2\) is more than the 1 GPU"):
        launch.check(cfg)


def test_trials_without_distribution_keep_their_key():
    """Records written before train.distributed and train.nproc existed are still found by resume."""
    from bench.config import config_key

    cfg = trial_config()
    before = cfg.to_dict()
    del before["train"]["distributed"], before["train"]["nproc"]
    assert cfg.key() == config_key(before)
    assert trial_config("train.distributed=ddp", "train.nproc=2").key() != cfg.key()


def test_on_gpu_ranks_use_nccl_and_accelerate_shards_as_it_does_on_any_gpu():
    from transformers import Trainer

    from bench.distributed.training import trainer_arguments, trainer_class

    cfg = trial_config("train.distributed=fsdp", "train.nproc=2")
    gpu, cpu = torch.device("cuda"), torch.device("cpu")
    assert trainer_arguments(cfg, gpu)["ddp_backend"] == "nccl" and trainer_arguments(cfg, cpu)["ddp_backend"] == "gloo"
    assert trainer_arguments(cfg, gpu)["per_device_train_batch_size"] == 2  # FAST's global batch of 4, split
    assert trainer_arguments(cfg, gpu)["fsdp_config"]["version"] == 2
    assert trainer_class(cfg, gpu) is Trainer and trainer_class(cfg, cpu) is not Trainer
    assert trainer_arguments(trial_config(), gpu) == {}


def test_bad_value_on_the_command_line_is_one_line_and_exit_2():
    done = subprocess.run([sys.executable, "-m", "bench.cli", "model=tiny-llama", "train.nproc=0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "peft-bench: `train.nproc` (0) must be >= 1"


def test_launcher_presets_ask_for_a_gpu_per_process():
    """`--cfg hydra` shows the request as train.nproc; `--cfg all --resolve` shows its values."""
    for shown, wanted in ((["hydra"], ["gpus_per_node: ${train.nproc}", "- train.nproc=4"]),
                          (["all", "--resolve"], ["gpus_per_node: 4", "tasks_per_node: 1", "cpus_per_task: 32"])):
        done = subprocess.run([sys.executable, "-m", "bench.cli", "hydra/launcher=slurm", "train.nproc=4", "--cfg",
                               *shown], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        for line in wanted:
            assert line in done.stdout, line
    from bench.config import compose_raw  # noqa: F401 (registers the resolvers)
    from hydra import compose, initialize_config_dir

    from bench.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        ray = compose(config_name="config", overrides=["hydra/launcher=ray-cluster", "train.nproc=4"],
                      return_hydra_config=True)
    assert ray.hydra.launcher.ray.remote.num_gpus == 4


def _failure(exitcode: int, message: str = ""):
    from types import SimpleNamespace

    return SimpleNamespace(exitcode=exitcode, message=message, signal_name=lambda: "SIGKILL")


def test_the_cause_is_the_killed_rank_not_the_ones_its_death_broke(tmp_path):
    """Rank 1 was SIGKILLed; rank 0 then failed on the broken connection: the trial failed because of rank 1."""
    from bench.common.files import write_atomic

    write_atomic(files.status_path(tmp_path, 1), {"rank": 1, "pid": 9, "phase": "train"})
    write_atomic(files.error_path(tmp_path, 0), {"rank": 0, "kind": "failed", "time": 1.0, "error": {
        "type": "RuntimeError", "message": "Connection closed by peer", "phase": "train"}})
    cause = launch._cause(tmp_path, {0: _failure(1), 1: _failure(-9, "Signal 9 (SIGKILL) received by PID 9")}, 2)
    assert cause.record_error == {"type": "RankDied", "message": "rank 1 of 2 died: Signal 9 (SIGKILL) received by "
                                  "PID 9", "phase": "train", "rank": 1}
    write_atomic(files.error_path(tmp_path, 1), {"rank": 1, "kind": "failed", "time": 0.5, "error": {
        "type": "ValueError", "message": "bad batch", "phase": "train"}})
    cause = launch._cause(tmp_path, {0: _failure(1), 1: _failure(1)}, 2)  # both raised: the earlier one
    assert cause.record_error["type"] == "ValueError" and cause.record_error["message"] == "rank 1: bad batch"


def test_scaling_plot_draws_memory_per_rank_and_tokens_per_s_against_processes(tmp_path):
    import pandas as pd

    from bench.report.plots.scaling import processes

    rows = [{"status": "ok", "method": method, "family": family, "model": "tiny-llama", "task": "bbc-topic",
             "seed": seed, "world_size": world, "distributed": kind, "peak_mem_bytes": 6e8 / (world or 1),
             "train_tokens_per_s": 500.0 * (world or 1)}
            for method, family in (("full", "full"), ("lora", "reparameterization"))
            for world, kind in ((None, None), (2, "fsdp"), (4, "fsdp"), (2, "ddp")) for seed in (0, 1)]
    trials = pd.DataFrame(rows)
    plots = processes(trials, trials, tmp_path)
    assert [p.name for p in plots] == ["scaling_processes_tiny-llama_bbc-topic"]
    assert all(path.is_file() for path in plots[0].files)


def _rank_figures(key: str, source: str, train_joules: float, tokens: int) -> dict:
    """What a rank hands rank 0 for the group's figures (memory and speed as a rank of a real trial reports them)."""
    return {"peak_mem_bytes": 1, "mem_source": "process_rss", "train_seconds": 2.0, "train_seconds_all_steps": 3.0,
            "train_tokens": tokens, "train_padded_tokens": tokens, "train_tokens_per_s": tokens / 2.0,
            "train_samples_per_s": 1.0, "energy_key": key, "energy_source": source,
            "energy_joules_by_phase": {"load": 10.0, "train": train_joules, "config": None}}


def test_group_energy_sums_every_gpu_and_counts_a_rapl_host_once():
    from bench.distributed.figures import group_metrics

    nvml = "nvml (whole GPU, all processes)"
    gpus = group_metrics([_rank_figures("GPU-aaa", nvml, 100.0, 1000), _rank_figures("GPU-bbb", nvml, 120.0, 1000)],
                         "ddp")
    assert gpus["energy_joules_train"] == 220.0 and gpus["energy_joules_load"] == 20.0  # both GPUs, not rank 0's
    assert gpus["energy_joules_train_rank1"] == 120.0 and "2 GPUs" in gpus["energy_source"]
    assert gpus["train_tokens"] / gpus["energy_joules_train"] == pytest.approx(2000 / 220)  # was 2000 / 100
    assert gpus["energy_joules_config"] is None  # no counter moved: n/a, not 0

    rapl = "rapl (CPU packages, all processes)"
    host = group_metrics([_rank_figures("rapl:node1", rapl, 50.0, 1000), _rank_figures("rapl:node1", rapl, 51.0, 1000)],
                         "fsdp")
    assert host["energy_joules_train"] == 51.0 and "1 host" in host["energy_source"]  # one host's packages, once

    partial = group_metrics([_rank_figures("GPU-aaa", nvml, 100.0, 1000), _rank_figures(None, None, 0.0, 1000)],
                            "ddp")
    assert partial["energy_joules_train"] is None and "rank 1" in partial["energy_source"]  # a partial sum reads low


def test_rank_0s_own_counter_does_not_replace_the_groups_energy():
    from bench.distributed.figures import group_metrics
    from bench.trial.ranks import own_phases

    nvml = "nvml (whole GPU, all processes)"
    metrics = group_metrics([_rank_figures("GPU-aaa", nvml, 100.0, 1000), _rank_figures("GPU-bbb", nvml, 120.0, 1000)],
                            "ddp")
    metrics.update(own_phases(metrics, {"energy_joules_train": 100.0, "energy_joules_evaluate": 5.0,
                                        "energy_source": nvml}))
    assert metrics["energy_joules_train"] == 220.0 and metrics["energy_joules_evaluate"] == 5.0
    assert "summed over 2 GPUs" in metrics["energy_source"]


def _sweep(results: Path, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "bench.cli", "-m", *TINY, *FAST, f"results_dir={results}", "sweep_name=d",
               "method=lora", "train.distributed=ddp", "train.nproc=2", *args]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})


def _rank_training(results: Path, rank: int, timeout_s: float = 240) -> dict:
    """The status of `rank` in the first trial of the sweep once it is training."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for path in results.glob(f"d/*/{launch.RUN_DIR_NAME}/rank{rank}.json"):
            status = json.loads(path.read_text() or "{}")
            if status.get("phase") == "train":
                return status | {"_dir": path.parent}
        time.sleep(0.2)
    raise AssertionError("rank never started training")


@pytest.mark.slow  # ~70 s on 2 busy cores: a sweep process and two trials of two ranks each
def test_a_killed_rank_fails_its_trial_and_the_sweep_goes_on(tmp_path):
    """LoRA over 2 DDP ranks, two trials: rank 1 of the long first one is SIGKILLed mid-training."""
    sweep = _sweep(tmp_path, "train.max_steps=400,4")  # the basic launcher runs them in this order
    output = []
    reader = threading.Thread(target=lambda: output.extend(sweep.stdout), daemon=True)
    reader.start()
    killed = _rank_training(tmp_path, 1)
    os.kill(killed["pid"], signal.SIGKILL)
    assert sweep.wait(timeout=600) == 0, "".join(output)[-3000:]
    reader.join(timeout=5)
    found = {r["config"]["train"]["max_steps"]: r for r in map(record.read, tmp_path.glob("d/*/record.json"))}
    failed, ok = found[400], found[4]
    assert failed["status"] == record.FAILED and failed["error"]["type"] == "RankDied"
    assert "rank 1 of 2" in failed["error"]["message"] and "SIGKILL" in failed["error"]["message"]
    assert failed["error"]["phase"] == "train"
    pids = [json.loads(p.read_text())["pid"] for p in killed["_dir"].glob("rank[0-9].json")]
    assert len(pids) == 2 and not any(_alive(pid) for pid in pids)  # no rank left behind
    assert ok["status"] == record.OK, ok.get("error")
    assert ok["metrics"]["world_size"] == 2 and ok["metrics"]["peak_mem_bytes_rank1"] > 0


@pytest.mark.slow  # ~60 s: the trial runs until its timeout
def test_a_trial_past_its_timeout_ends_with_all_its_ranks(tmp_path):
    sweep = _sweep(tmp_path, "train.max_steps=100000", "trial_timeout=45")
    output, _ = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, output[-3000:]
    (found,) = map(record.read, tmp_path.glob("d/*/record.json"))
    assert found["status"] == record.FAILED and found["error"]["type"] == "TrialTimeout", found["error"]
    statuses = list(tmp_path.glob(f"d/*/{launch.RUN_DIR_NAME}/rank[0-9].json"))
    assert len(statuses) == 2
    time.sleep(1)  # the parent-death signal is delivered as the trial process dies; give the kernel a moment
    assert not any(_alive(json.loads(path.read_text())["pid"]) for path in statuses)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kind", ["ddp", "fsdp"])
def test_one_gpu_rank_under_nccl(kind):
    result = run_trial(trial_config(*TINY, "method=full", f"train.distributed={kind}", "train.nproc=1",
                                    "train.max_steps=5"), progress=False)  # steps 3-4: profiled
    assert result.status == record.OK, result.error
    assert result.metrics["device"].startswith("cuda") and result.metrics["world_size"] == 1
    assert result.metrics["peak_mem_bytes_rank0"] > 0 and 0 <= result.metrics["comm_share"] <= 1
    assert result.metrics["gathered_max_abs_diff"] is not None
    if (result.metrics.get("energy_source") or "").startswith("nvml"):  # the group's one GPU, counted once
        assert result.metrics["energy_joules_train"] == pytest.approx(result.metrics["energy_joules_train_rank0"],
                                                                     abs=1e-3)
