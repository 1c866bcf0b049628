"""End-to-end trials: the record has every column; full and LoRA differ the way they must; the memory breakdown adds
up to the peak; shared work stays out of the trial; the probe's "before" is the base the method trains on.

pytest tests/test_trial.py                 (fast: tiny models and minilm-l6, FAST sizes)
pytest -m slow tests/test_trial.py         (both embedded models through every launch path: ~10 min on 2 cores)
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench import methods, models, trial
from bench.probes.perplexity import PerplexityProbe
from bench.probes.retrieval import RetrievalProbe
from bench.results.metrics import METRICS
from bench.trackers import energy, peak_flops
from bench.launch.trial import run_trial
from bench.trial.load import base_probe_of
from bench.trial.train import own_optimizer
from tests.conftest import FAST, trial_config

ROOT = Path(__file__).parent.parent
# Columns every ok trial fills, from the metric catalogue; merged latency only for methods that merge.
REQUIRED = [column for column, metric in METRICS.items() if metric.required]
PARTS = ("mem_weights_bytes", "mem_grads_bytes", "mem_optimizer_bytes", "mem_other_bytes", "mem_activations_bytes",
         "mem_transient_bytes")
MIB = 2**20


@pytest.fixture(scope="module")
def minilm_trials():
    """full and lora on the real minilm-l6 + bbc-topic, FAST-sized."""
    return {m: run_trial(trial_config("model=minilm-l6", f"method={m}"), progress=False) for m in ("lora", "full")}


def test_lora_on_minilm_fills_every_column(minilm_trials):
    record = minilm_trials["lora"]
    assert record.status == "ok", record.error
    missing = [c for c in REQUIRED + ["latency_ms_p50_merged"] if record.metrics.get(c) is None]
    assert not missing
    m = record.metrics
    assert m["quality_metric"] == "accuracy" and {"accuracy", "f1_macro"} <= set(m)
    assert m["forgetting_probe"] == "retrieval_recall@1" and 0 <= m["probe_before"] <= 1
    assert m["merge_ok"] is True and m["merge_max_abs_diff"] < 1e-3 and m["precision"] == "fp32"
    assert math.isfinite(m["final_loss"]) and m["train_flops"] > 0
    assert record.identity == {"method": "lora", "family": "reparameterization", "model": "minilm-l6",
                               "task": "bbc-topic", "seed": 0}


def test_timed_steps_start_after_the_cpu_memory_window(minilm_trials):
    """The window's exact malloc policy slows a step by ~40%, and the first step after it re-grows the heap: neither
    is timed (FAST: warm-up 1 of 4)."""
    cfg = trial_config("model=minilm-l6")
    assert trial.untimed_steps(cfg, torch.device("cpu")) == 3  # the window lasts at least 2 steps, then 1 settles
    assert trial.untimed_steps(cfg, torch.device("cuda")) == 1  # no window on GPU: the FLOP-counted step only
    for record in minilm_trials.values():
        m = record.metrics
        assert m["mem_window_steps"] == 2 and m["train_steps"] - m["train_timed_steps"] == m["mem_window_steps"] + 1


def test_a_trial_records_what_ran_beside_it(minilm_trials):
    m = minilm_trials["lora"].metrics
    assert m["concurrent_trials"] == 1 and m["concurrent_trials_source"] == "single run"
    for phase in ("train", "latency", "evaluate"):
        assert 0.0 <= m[f"cpu_share_others_{phase}"] <= 1.0 and m[f"load_avg_1m_{phase}"] >= 0.0
    quiet = all(m[f"cpu_share_others_{phase}"] < 0.15 for phase in ("train", "latency"))
    assert m["timed_alone"] is quiet


def test_full_trains_everything_and_costs_more_than_lora(minilm_trials):
    full, lora = minilm_trials["full"].metrics, minilm_trials["lora"].metrics
    assert minilm_trials["full"].status == "ok"
    assert full["trainable_fraction"] == 1.0
    assert lora["trainable_fraction"] < 0.02
    trained_state = lambda m: m["mem_grads_bytes"] + m["mem_optimizer_bytes"]  # noqa: E731
    assert trained_state(full) > 10 * trained_state(lora)
    assert full["checkpoint_bytes"] > 50 * lora["checkpoint_bytes"]
    assert full.get("latency_ms_p50_merged") is None  # full fine-tuning has nothing to merge


def _assert_breakdown_adds_up(m: dict) -> None:
    """The parts sum to the peak; runtime/other is the Python runtime and libraries: a few hundred MiB."""
    assert sum(m[p] for p in PARTS) == m["peak_mem_bytes"]
    assert 100 * MIB < m["mem_other_bytes"] < 2048 * MIB, m["mem_other_bytes"] / MIB
    assert m["mem_activations_bytes"] > 0
    assert m["mem_baseline_bytes"] > m["mem_weights_bytes"]  # the weights are resident before the baseline
    if m.get("peak_mem_hwm_bytes"):  # the kernel's mark and the sampled RSS tell the same peak
        assert m["peak_mem_sampled_bytes"] <= m["peak_mem_hwm_bytes"] * 1.01
        assert m["peak_mem_sampled_bytes"] > 0.8 * m["peak_mem_hwm_bytes"]


def test_the_memory_breakdown_adds_up_to_the_peak(minilm_trials):
    for record in minilm_trials.values():
        _assert_breakdown_adds_up(record.metrics)


def test_loaded_weights_are_resident_before_training():
    """from_pretrained maps the safetensors file: untouched weights are not in the RSS. After load_base, reading
    every weight must not grow the process (it did by the weights' size: the baseline missed them)."""
    import psutil

    base = trial.load_base(trial_config("model=minilm-l6"))
    weights = sum(p.numel() * p.element_size() for p in base.model.parameters())
    before = psutil.Process().memory_info().rss
    with torch.no_grad():
        touched = sum(float(p.sum()) for p in base.model.parameters())
    grown = psutil.Process().memory_info().rss - before
    assert math.isfinite(touched) and grown < 0.1 * weights, (grown / MIB, weights / MIB)


def test_generation_trial_scores_rouge_and_perplexity():
    record = run_trial(trial_config("model=tiny-llama", "task=bbc-headline", "task.max_eval_samples=4",
                                    "task.max_new_tokens=4"), progress=False)
    assert record.status == "ok", record.error
    m = record.metrics
    assert m["quality_metric"] == "rougeL" and {"rouge1", "rouge2", "rougeL"} <= set(m)
    assert m["forgetting_probe"] == "perplexity" and m["probe_before"] > 1
    assert m["n_probe"] == 8 and m["forgetting_ci_low"] <= m["forgetting"] <= m["forgetting_ci_high"]
    assert len(record.items["probe_before"]) == len(record.items["probe_after"]) == 8  # paired, item by item


def test_decoder_classification_probes_with_the_base_lm_head():
    record = run_trial(trial_config("model=tiny-llama", "method=full"), progress=False)
    assert record.status == "ok", record.error
    m = record.metrics
    assert m["forgetting_probe"] == "perplexity" and m["probe_after"] != m["probe_before"]


def test_nan_loss_fails_the_trial_in_the_train_phase():
    record = run_trial(trial_config("model=tiny-bert", "method=full", "train.learning_rate=1e30"), progress=False)
    assert record.status == "failed"
    assert record.error["phase"] == "train" and record.error["type"] == "NonFiniteLoss"


def _fresh_cache(tmp_path: Path) -> Path:
    """An empty cache that shares the built models (no conversion) and this machine's peak (no timing)."""
    shared = trial_config().cache_dir
    cache = tmp_path / "cache"
    (cache / "peak_flops").mkdir(parents=True)
    (cache / "models").symlink_to(Path(shared).expanduser() / "models")
    threads = 1
    kept = peak_flops.cache_path(cache, threads)
    kept.write_text(json.dumps({"identity": peak_flops._identity(), "flops_per_s": 1e11, "threads": threads}))
    return cache


def _count_measures(monkeypatch) -> list:
    calls = []
    for cls in (PerplexityProbe, RetrievalProbe):
        original = cls.measure
        monkeypatch.setattr(cls, "measure", lambda self, model, _o=original: calls.append(1) or _o(self, model))
    return calls


def test_a_cold_probe_cache_is_filled_outside_the_trial(tmp_path, monkeypatch):
    """The first trial of a model does not score the base model itself (a child process does, before the trial
    measures anything): the same trial's baseline and peak agree within 5% whether the cache was cold or warm."""
    cache = _fresh_cache(tmp_path)
    cfg = trial_config("model=tiny-bert", "train.threads=1", f"cache_dir={cache}")
    # Two trials in one process: the first would also import what any first trial imports (evaluation, metrics:
    # 40-70 MB the second one starts with). A trial before them levels that, as separate processes would.
    run_trial(trial_config("model=tiny-bert", "train.threads=1"), progress=False)
    calls = _count_measures(monkeypatch)
    cold = run_trial(cfg, progress=False)
    assert cold.status == "ok", cold.error
    assert len(calls) == 1  # the tuned model's probe only; the base score came from the child
    warm = run_trial(cfg, progress=False)
    assert len(calls) == 2
    assert cold.metrics["seconds_prepare"] > 0 and "seconds_prepare" not in warm.metrics
    assert cold.metrics["probe_before"] == warm.metrics["probe_before"]
    for key in ("mem_baseline_bytes", "peak_mem_bytes"):
        assert abs(cold.metrics[key] - warm.metrics[key]) < 0.05 * warm.metrics[key], key


def test_forgetting_is_na_not_computed_when_the_base_score_is_missing(tmp_path, monkeypatch):
    cache = _fresh_cache(tmp_path)
    from bench.launch import shared

    monkeypatch.setattr(shared, "_run_child", lambda cfg, cold: None)  # the child failed to fill it
    calls = _count_measures(monkeypatch)
    record = run_trial(trial_config("model=tiny-bert", "train.threads=1", f"cache_dir={cache}"), progress=False)
    assert record.status == "ok", record.error
    assert record.metrics["probe_before"] is None and record.metrics["forgetting"] is None
    assert "probe_error" in record.metrics and len(calls) == 1


def test_a_quantized_base_is_probed_before_training(monkeypatch):
    """QLoRA trains on a quantized base: "before" is that base (adapters off), not the float one, so forgetting
    does not count the quantization error. Quantization is mimicked on CPU (weights rounded, the 4-bit flag)."""
    import peft

    lora = methods.get("lora")

    def quantize_then_lora(model, cfg, arch):
        with torch.no_grad():
            for module_name in arch.attention + arch.mlp:
                weight = model.get_submodule(module_name).weight
                weight.copy_((weight * 8).round() / 8)  # coarse rounding: what 4-bit storage does to weights
        model.is_loaded_in_4bit = True
        return peft.get_peft_model(model, peft.LoraConfig(r=2, target_modules=arch.query_value))

    fake = methods.Method("lora", "reparameterization", lora.config_cls, quantize_then_lora, "test")
    monkeypatch.setattr(methods, "get", lambda name: fake)
    found = trial.Measured()
    ready = trial.setup(trial_config("model=tiny-llama", "task=bbc-headline"), found=found)
    metrics = found.figures
    assert models.is_quantized(ready.model)
    cached = base_probe_of(trial_config("model=tiny-llama", "task=bbc-headline"),
                               trial.load_base(trial_config("model=tiny-llama", "task=bbc-headline")), ready.probe)
    assert metrics["probe_before_source"] == "quantized base"
    assert metrics["probe_before"] != cached["score"]
    with ready.model.disable_adapter():
        assert metrics["probe_before"] == ready.probe.score(ready.model)


def test_mixed_precision_keeps_float32_weights_for_every_method(monkeypatch):
    """bf16 is autocast over float32 weights (the Trainer's bf16=True), as users train; the weights were loaded in
    bf16 before, so full fine-tuning trained bf16 weights without float32 master copies."""
    cfg = trial_config("model=tiny-bert", "method=full", "train.precision=bf16")
    ready = trial.setup(cfg, with_probe=False)
    assert {p.dtype for p in ready.model.parameters()} == {torch.float32}
    assert trial.precision(cfg, ready.device) == "bf16"
    assert trial.training_args(cfg, ready.device, "/tmp/unused", False).bf16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert trial.precision(trial_config(), torch.device("cuda", 0)) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert trial.precision(trial_config(), torch.device("cuda", 0)) == "fp32"
    assert trial.precision(trial_config(), torch.device("cpu")) == "fp32"


class _Counter:
    source = "fake counter"

    def __init__(self):
        self.joules = 0.0

    def read(self):
        self.joules += 1.5
        return self.joules


def test_energy_per_phase_and_tokens_per_joule(monkeypatch):
    monkeypatch.setattr(energy, "reader", lambda device: _Counter())
    m = run_trial(trial_config("model=tiny-bert"), progress=False).metrics
    assert m["energy_joules_train"] == m["energy_joules_evaluate"] == 1.5 and m["energy_source"] == "fake counter"
    assert m["train_tokens_per_joule"] == m["train_tokens"] / 1.5


def test_energy_is_na_where_no_counter_is_readable(monkeypatch):
    monkeypatch.setattr(energy, "reader", lambda device: None)
    m = run_trial(trial_config("model=tiny-bert"), progress=False).metrics
    assert m["energy_source"] is None and not any(k.startswith("energy_joules") for k in m)
    assert m.get("train_tokens_per_joule") is None


LAUNCHES = {
    "single": [],
    "forked": ["-m"],
    "joblib": ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=1"],
}


@pytest.mark.slow
@pytest.mark.parametrize("launch", sorted(LAUNCHES))
@pytest.mark.parametrize("model", ["minilm-l6", "smollm2-135m"])
def test_the_breakdown_adds_up_on_every_launch_path(tmp_path, model, launch):
    """`peft-bench`, a forked sweep trial and a joblib sweep trial: runtime/other positive and plausible, parts
    summing to the peak, on both embedded models."""
    task = "bbc-topic"
    command = [sys.executable, "-m", "bench.cli", *LAUNCHES[launch], f"model={model}", f"task={task}", "method=lora",
               *FAST, "train.threads=1", f"results_dir={tmp_path}", "sweep_name=t"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (path,) = tmp_path.glob("t/*/record.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok", record["error"]
    _assert_breakdown_adds_up(record["metrics"])
    shutil.rmtree(tmp_path / "t")


@pytest.mark.parametrize("under_load", [False, True])
def test_mfu_divides_by_the_kept_peak_and_is_na_when_it_was_timed_under_load(tmp_path, under_load):
    threads = torch.get_num_threads()
    path = peak_flops.cache_path(tmp_path, threads)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"identity": peak_flops._identity(), "flops_per_s": 1e11, "threads": threads,
                                "under_load": under_load}))
    metrics = {"train_flops_per_s": 4e10}
    trial.add_mfu(metrics, torch.device("cpu"), tmp_path)
    assert metrics["peak_flops_per_s"] == 1e11 and metrics["peak_flops_under_load"] is under_load
    assert metrics["mfu"] == (None if under_load else 0.4)


def test_a_method_that_brings_its_own_optimizer_is_the_one_the_trainer_steps():
    """LoRA-FA trains with peft's LoRA-FA optimizer (B's gradient projected), not the Trainer's AdamW; a method
    without one keeps the Trainer's."""
    from peft.optimizers.lorafa import LoraFAOptimizer

    cfg = trial_config("model=tiny-bert", "method=lora-fa", "train.threads=1")
    ready = trial.setup(cfg, with_probe=False)
    stepped = trial.train(cfg, ready, progress=False).trainer.optimizer
    assert isinstance(getattr(stepped, "optimizer", stepped), LoraFAOptimizer)
    plain = trial_config("model=tiny-bert", "method=lora", "train.threads=1")
    assert own_optimizer(plain, trial.setup(plain, with_probe=False)) is None


def test_a_method_with_its_own_optimizer_is_skipped_under_fsdp_before_anything_loads():
    record = run_trial(trial_config("model=tiny-bert", "method=lora-fa", "train.distributed=fsdp", "train.nproc=2"),
                       progress=False)
    assert record.status == "skipped" and "cannot shard" in record.error["message"]
    assert "seconds_load" not in record.metrics
