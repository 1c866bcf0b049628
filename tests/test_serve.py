"""The serving scenario on tiny models: mixed batches, swaps, K full copies, records, bad input.

pytest tests/test_serve.py        (~2-3 min on 2 shared cores: tiny-bert / tiny-llama, a few real processes)
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from bench import methods
from bench.results import record as records
from bench.serve import adapters, full_copies, load, traffic
from bench.serve import config as serve_config
from bench.serve import host as hosts
from bench.trial import load_base
from bench.launch.trial import run_trial

ROOT = Path(__file__).parent.parent
SMALL = ["task.max_train_samples=64", "task.max_eval_samples=16", "train.max_length=32", "serve.requests=8",
         "serve.batch_size=4", "serve.max_length=16", "serve.repeats=1", "serve.swap_repeats=3", "train.threads=1"]
NO_AUTOCAST = torch.autocast("cpu", enabled=False)


def serve_cfg(*overrides: str) -> serve_config.ServeTrial:
    return serve_config.compose(*SMALL, *overrides)


def resident(model_name: str, method_name: str, k: int, tmp: Path):
    """(host with K fresh adapters loaded, request pool, base) for a model and method."""
    cfg = serve_cfg(f"model={model_name}", f"method={method_name}", f"serve.k={k}")
    base = load_base(cfg.trial)
    method = methods.get(method_name)
    method_cfg = method.build_config(cfg.trial.method.params)
    kind, tuned = adapters.host_kind(cfg, base.model, method, method_cfg, base.arch)
    paths = adapters.fresh(tuned, k, seed=0, noise_std=0.05, folder=tmp)
    host = hosts.make(kind, base.model, method, method_cfg, base.arch)
    load.load_all(host, paths, adapters.names(k), base.device)
    pool = traffic.requests([r["text"] for r in base.data.test_rows], base.tokenizer, cfg.serve, base.device)
    return host, pool


def logits(host, batch, adapter_names=None):
    with torch.inference_mode():
        return host.forward(batch, adapter_names).logits.float()


@pytest.fixture(scope="module")
def lora_llama(tmp_path_factory):
    return resident("tiny-llama", "lora", 3, tmp_path_factory.mktemp("lora"))


def test_mixed_batch_rows_equal_each_adapter_alone(lora_llama):
    host, pool = lora_llama
    batch = traffic.rows(pool, [0, 1, 2, 3])
    chosen = ["task2", "task0", "task1", "task2"]
    mixed = logits(host, batch, chosen)
    for row, name in enumerate(chosen):
        host.activate(name)
        torch.testing.assert_close(mixed[row], logits(host, batch)[row], rtol=1e-5, atol=1e-5)
    checked = traffic.check_outputs(host, pool, 4, torch.float32, lambda: NO_AUTOCAST)
    assert checked["mixed_ok"] is True and checked["swap_changes_output"] is True


class IgnoresAdapterNames:
    """A host whose mixed forward answers every row with the active adapter (what peft does for IA3)."""

    def __init__(self, host):
        self.host = host

    def __getattr__(self, name):
        return getattr(self.host, name)

    def forward(self, batch, adapter_names=None):
        return self.host.forward(batch)


def test_output_check_catches_rows_served_by_the_wrong_adapter(lora_llama):
    host, pool = lora_llama
    checked = traffic.check_outputs(IgnoresAdapterNames(host), pool, 4, torch.float32, lambda: NO_AUTOCAST)
    assert checked["mixed_ok"] is False and "own adapter" in checked["mixed_na"]
    serve = serve_config.ServeConfig(k=3, requests=8, batch_size=4, repeats=1, streams=["round-robin"])
    served = traffic.measure(IgnoresAdapterNames(host), host.model, pool, serve, 0, "cpu", lambda: NO_AUTOCAST,
                             checked["mixed_na"])
    assert served["mixed_round_robin_ms_p50"] is None and served["single_round_robin_ms_p50"] > 0


def test_every_swap_kind_changes_the_outputs(lora_llama):
    host, pool = lora_llama
    batch = traffic.rows(pool, [0, 1])
    alone = {}
    for name in host.names:
        host.activate(name)
        alone[name] = logits(host, batch)
    assert (alone["task0"] - alone["task1"]).abs().max() > 1e-3
    host.activate("task0")
    with torch.no_grad():
        host.hotswap(host.paths["task1"])  # task1's weights into task0's slot
    torch.testing.assert_close(logits(host, batch), alone["task1"])
    with torch.no_grad():
        host.hotswap(host.paths["task0"])
    torch.testing.assert_close(logits(host, batch), alone["task0"])
    with torch.no_grad():
        host.merge("task2")
        merged = logits(host, batch)
        host.unmerge()
    torch.testing.assert_close(merged, alone["task2"], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method_name, refused", [("ia3", "LoRA-type layers only"),
                                                  ("adapter-houlsby", "one active set of weights")])
def test_other_hosts_swap_but_refuse_mixed_batches(method_name, refused, tmp_path):
    host, pool = resident("tiny-bert", method_name, 2, tmp_path)
    batch = traffic.rows(pool, [0, 1])
    host.activate("task0")
    first = logits(host, batch)
    host.activate("task1")
    assert (first - logits(host, batch)).abs().max() > 1e-4
    checked = traffic.check_outputs(host, pool, 4, torch.float32, lambda: NO_AUTOCAST)
    assert refused in checked["mixed_na"] and "mixed_ok" not in checked


class AllocatingHost:
    """Each adapter load leaves `pieces` small tensors resident (heap allocations, not one large mapping)."""

    def __init__(self, pieces: int, floats: int):
        self.pieces, self.floats, self.held = pieces, floats, {}

    def load(self, name, path):
        self.held[name] = [torch.ones(self.floats) for _ in range(self.pieces)]

    def adapter_tensor_bytes(self, name):
        return sum(t.numel() * 4 for t in self.held[name])


def test_memory_per_adapter_is_measured_even_where_freed_memory_would_be_reused():
    # 32 MiB of 64 KiB blocks freed between blocks still held: holes in the heap that glibc keeps (it trims only the
    # top by itself), which new tensors would reuse without the RSS growing unless they are handed back first
    blocks = [torch.ones(16_384) for _ in range(1024)]
    held = blocks[1::2]
    del blocks
    host = AllocatingHost(pieces=128, floats=16_384)  # 8 MiB per adapter, in 64 KiB blocks
    measured = load.load_all(host, [None] * 3, ["a", "b", "c"], "cpu")
    per_adapter = 128 * 16_384 * 4
    assert 0.8 * per_adapter <= measured["mem_per_adapter_bytes"] <= 1.3 * per_adapter, measured
    assert measured["mem_source"] == "process_rss" and measured["adapter_tensor_bytes"] == per_adapter
    assert len(held) == 512


def test_memory_on_a_gpu_is_the_allocators(monkeypatch):
    """The CUDA path with the allocator mocked (no GPU here): memory_allocated before, after the first, after all."""
    readings = iter([1000, 1400, 2600])
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: next(readings))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 3000)
    measured = load.load_all(AllocatingHost(pieces=1, floats=4), [None] * 4, ["a", "b", "c", "d"], "cuda")
    assert measured["mem_source"] == "cuda_allocator" and measured["mem_adapters_bytes"] == 1600
    assert measured["mem_per_adapter_bytes"] == 400 and measured["mem_per_extra_adapter_bytes"] == 400
    assert measured["mem_load_peak_bytes"] == 2000


@pytest.mark.parametrize("preset", sorted(p.stem for p in (ROOT / "conf" / "serve" / "sweep").glob("*.yaml")))
def test_every_serve_preset_composes(preset):
    cfg = serve_config.compose(f"serve/sweep={preset}")
    assert cfg.serve.k >= 1 and cfg.trial.sweep_name.startswith("serve")


def test_streams():
    assert traffic.stream("round-robin", 6, 3, 1.1, 0) == [0, 1, 2, 0, 1, 2]
    uniform = traffic.stream("uniform", 400, 4, 1.1, 0)
    assert set(uniform) == {0, 1, 2, 3} and uniform == traffic.stream("uniform", 400, 4, 1.1, 0)
    counts = Counter(traffic.stream("zipf", 2000, 8, 1.5, 0))
    assert counts[0] > 3 * counts[7] and counts[0] > counts[1] > counts[3]
    flatter = Counter(traffic.stream("zipf", 2000, 8, 0.2, 0))
    assert flatter[0] < counts[0]


def test_modes_take_turns_window_by_window():
    calls = []

    def answer(name, seconds):
        def window(pool, requests, ids):
            calls.append((name, tuple(requests)))
            return [seconds] * len(ids)
        return window

    served = traffic.serve_side_by_side({"a": answer("a", 0.1), "b": answer("b", 0.2)}, {}, [0] * 5, 2)
    assert calls == [("a", (0, 1)), ("b", (0, 1)), ("b", (2, 3)), ("a", (2, 3)), ("a", (4,)), ("b", (4,))]
    assert served["a"] == ([0.1] * 5, pytest.approx(0.3)) and served["b"][1] == pytest.approx(0.6)


def test_full_copies_memory_measured_where_they_fit(tmp_path):
    cfg = serve_cfg("model=tiny-bert")
    base = load_base(cfg.trial)
    first = full_copies.save_first(base.model, tmp_path)
    weights = full_copies.weights(base.model)
    measured = full_copies.measure(type(base.model), first, weights, 3, "cpu", 0.5)
    assert measured["copies_source"] == "measured" and measured["copies_measured"] == 3
    assert measured["copies_mem_bytes"] >= 0.8 * 3 * weights  # each copy's weights read into memory
    assert measured["storage_full_bytes"] >= 0.95 * 3 * weights  # buffers such as position ids are not saved
    one_fits = 1.5 * weights / full_copies.available_bytes("cpu")
    extrapolated = full_copies.measure(type(base.model), first, weights, 4, "cpu", one_fits)
    assert extrapolated["copies_measured"] == 1
    assert extrapolated["copies_source"] == "extrapolated from 1 loaded copies"
    assert extrapolated["storage_full_source"] == "extrapolated from 1 written copies"


def test_serving_records(tmp_path):
    from bench.serve import scenario

    done = scenario.run(serve_cfg("model=tiny-bert", "method=lora", "serve.k=2", f"serve.work_dir={tmp_path}"))
    assert done.status == records.OK, done.error
    m = done.metrics
    assert m["mem_adapters_bytes"] is not None  # a few kB on a tiny model: page-sized noise (measured in a test below)
    for column in ("load_s_p50", "swap_set_ms_p50", "swap_hotswap_ms_p50", "swap_merge_ms_p50",
                   "mixed_round_robin_ms_p50", "single_zipf_rps", "merged_uniform_ms_p90", "base_ms_p50",
                   "copies_mem_bytes", "storage_adapters_bytes"):
        assert m[column] is not None and m[column] > 0, column
    assert m["mixed_ok"] and m["swap_changes_output"] and m["serve_k"] == 2
    assert done.identity["method"] == "lora" and done.provenance["torch_threads"] == 1
    skipped = scenario.run(serve_cfg("model=tiny-bert", "method=bitfit", f"serve.work_dir={tmp_path}"))
    assert skipped.status == records.SKIPPED and "cannot be served as a swappable adapter" in skipped.error["message"]


def saved_sweep(folder: Path, model_name: str, count: int) -> Path:
    """A sweep folder as `peft-bench -m ... train.save_checkpoint=true` leaves it: record + checkpoint/ per trial."""
    from bench import config

    cfg = config.compose(f"model={model_name}", "method=lora", "task.max_train_samples=64")
    base = load_base(cfg)
    method = methods.get("lora")
    tuned = method.apply(base.model, method.build_config({}), base.arch)
    for seed in range(count):
        trial_dir = folder / f"{model_name}__bbc-topic__lora__seed{seed}"
        adapters.fresh(tuned, 1, seed, 0.05, trial_dir)
        (trial_dir / "task0").rename(trial_dir / adapters.CHECKPOINT_DIR)
        values = dataclasses.replace(cfg, seed=seed).to_dict()
        records.write(records.TrialRecord(status=records.OK, config=values, key=f"k{seed}",
                                          identity=records.identity(values)), trial_dir)
    return folder


def test_serves_the_checkpoints_a_sweep_saved(tmp_path):
    from bench.cli import serve as cli

    sweep = saved_sweep(tmp_path / "sweep", "tiny-bert", 2)
    raw = serve_config.compose_raw(*SMALL, "model=tiny-bert", "serve.k=2", f"serve.adapters={sweep}")
    # torch is imported in this process, so the trial runs in a fresh `python -m bench.launch.worker DIR`
    result = cli.run_job(raw, tmp_path / "serve" / "trial", force=False)
    assert result["status"] == records.OK and result["metrics"]["adapters_source"] == str(sweep)
    assert result["metrics"]["swap_changes_output"] is True
    again = cli.run_job(raw, tmp_path / "serve" / "trial", force=False)  # finished: read back, not run again
    assert again == result


def test_save_checkpoint_keeps_the_adapter_in_the_trial_folder(tmp_path):
    from tests.conftest import trial_config

    cfg = trial_config("model=tiny-bert", "method=lora", "train.save_checkpoint=true", "train.threads=1")
    result = run_trial(cfg, progress=False, trial_dir=tmp_path)
    assert result.status == records.OK, result.error
    saved = json.loads((tmp_path / adapters.CHECKPOINT_DIR / "adapter_config.json").read_text())
    assert saved["peft_type"] == "LORA"


def serve_cli(results: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "bench.cli.serve", "model=tiny-bert", *SMALL, f"results_dir={results}", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("args, says", [
    (["serve.k=0"], "`serve.k` (0)"),
    (["serve.adapters={dir}/missing"], "`serve.adapters` ("),
    (["serve.adapters={dir}/sweep", "serve.k=1"], "another base model (tiny-llama)"),
    (["serve.adapters={dir}/sweep", "serve.k=1", "model=tiny-llama", "method=ia3"], "`serve.k` (1) is more than the 0"),
    (["serve.k=1,2", "serve.batch_size=0"], "`serve.batch_size` (0)"),  # a sweep's shared value: before any trial
    (["serve/sweep=nosuch"], "`serve/sweep` ('nosuch') is not in conf/serve/sweep/; valid: all, methods, smollm2"),
    (["method=bitfit", "method.params.alpha=1"], "`method.params.alpha` (1) is not a parameter of method bitfit"),
])
def test_bad_input_one_line_exit_2_no_record(args, says, tmp_path):
    if any("sweep" in arg for arg in args):
        saved_sweep(tmp_path / "sweep", "tiny-llama", 1)
    done = serve_cli(tmp_path / "results", *(arg.format(dir=tmp_path) for arg in args))
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("peft-bench-serve: ") and says in lines[0], done.stderr
    assert not list((tmp_path / "results").rglob(records.RECORD_NAME))


def killed_while_serving(folder: Path) -> None:
    """A serving trial's runner whose process dies mid-trial, as one the kernel kills for memory does."""
    from bench.serve import child, scenario

    scenario.run = lambda cfg: os.kill(os.getpid(), signal.SIGKILL)
    child.run(folder)


def test_a_serving_trial_whose_process_dies_is_recorded_failed_with_the_cause(tmp_path, monkeypatch):
    from bench.launch.isolation import run_isolated

    # torch is imported here, so the child is a fresh `python -m bench.launch.worker DIR`: it imports this module
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(Path(__file__).parent),
                                                                   os.environ.get("PYTHONPATH")])))
    cfg = serve_cfg("model=tiny-bert", "serve.k=4")
    died = run_isolated(cfg, tmp_path / "trial", runner=killed_while_serving, metrics={"serve_k": 4})
    assert died == records.read(tmp_path / "trial" / records.RECORD_NAME)
    assert died["status"] == records.FAILED and died["error"]["type"] == "ProcessDied"
    assert died["error"]["message"].startswith("trial process died from SIGKILL")
    assert died["metrics"]["serve_k"] == 4 and died["key"] == cfg.key() and died["config"] == cfg.to_dict()


def test_a_serving_sweep_goes_on_past_a_trial_killed_for_its_timeout(tmp_path):
    done = serve_cli(tmp_path, "serve.k=1,2", "trial_timeout=0.5")
    assert done.returncode == 0, done.stderr[-2000:]
    found = {r["metrics"]["serve_k"]: r for r in map(records.read, (tmp_path / "serve").rglob(records.RECORD_NAME))}
    assert set(found) == {1, 2}, done.stdout
    for record in found.values():
        assert record["status"] == records.FAILED and record["error"]["type"] == "TrialTimeout"
        assert "ran past trial_timeout (0.5 s)" in record["error"]["message"]

