"""End-to-end trials: the record has every column; full and LoRA differ the way they must.

pytest tests/test_trial.py
"""

from __future__ import annotations

import math

import pytest

from bench import trial
from tests.conftest import trial_config

# Columns every ok trial fills (shared/DESIGN.md); merged latency only for methods that merge.
REQUIRED = [
    "total_params", "trainable_params", "trainable_fraction", "peak_mem_bytes", "mem_source",
    "mem_weights_bytes", "mem_grads_bytes", "mem_optimizer_bytes", "mem_activations_bytes",
    "train_seconds", "train_tokens_per_s", "train_samples_per_s", "train_flops", "final_loss",
    "quality", "quality_metric", "latency_ms_p50", "latency_ms_p90", "checkpoint_bytes",
    "forgetting", "forgetting_probe", "probe_before", "probe_after",
]


@pytest.fixture(scope="module")
def minilm_trials():
    """full and lora on the real minilm-l6 + bbc-topic, FAST-sized."""
    return {m: trial.run(trial_config("model=minilm-l6", f"method={m}"), progress=False) for m in ("lora", "full")}


def test_lora_on_minilm_fills_every_column(minilm_trials):
    record = minilm_trials["lora"]
    assert record.status == "ok", record.error
    missing = [c for c in REQUIRED + ["latency_ms_p50_merged"] if record.metrics.get(c) is None]
    assert not missing
    m = record.metrics
    assert m["quality_metric"] == "accuracy" and {"accuracy", "f1_macro"} <= set(m)
    assert m["forgetting_probe"] == "retrieval_recall@1" and 0 <= m["probe_before"] <= 1
    assert m["merge_max_abs_diff"] < 1e-3
    assert math.isfinite(m["final_loss"]) and m["train_flops"] > 0
    assert record.identity == {"method": "lora", "family": "reparameterization", "model": "minilm-l6",
                               "task": "bbc-topic", "seed": 0}


def test_full_trains_everything_and_costs_more_than_lora(minilm_trials):
    full, lora = minilm_trials["full"].metrics, minilm_trials["lora"].metrics
    assert minilm_trials["full"].status == "ok"
    assert full["trainable_fraction"] == 1.0
    assert lora["trainable_fraction"] < 0.02
    assert full["mem_grads_bytes"] + full["mem_optimizer_bytes"] > 10 * (lora["mem_grads_bytes"] + lora["mem_optimizer_bytes"])
    assert full["checkpoint_bytes"] > 50 * lora["checkpoint_bytes"]
    assert full.get("latency_ms_p50_merged") is None  # full fine-tuning has nothing to merge


def test_generation_trial_scores_rouge_and_perplexity():
    record = trial.run(trial_config("model=tiny-llama", "task=bbc-headline", "task.max_eval_samples=4",
                                    "task.max_new_tokens=4"), progress=False)
    assert record.status == "ok", record.error
    m = record.metrics
    assert m["quality_metric"] == "rougeL" and {"rouge1", "rouge2", "rougeL"} <= set(m)
    assert m["forgetting_probe"] == "perplexity" and m["probe_before"] > 1


def test_decoder_classification_probes_with_the_base_lm_head():
    record = trial.run(trial_config("model=tiny-llama", "method=full"), progress=False)
    assert record.status == "ok", record.error
    m = record.metrics
    assert m["forgetting_probe"] == "perplexity" and m["probe_after"] != m["probe_before"]


def test_nan_loss_fails_the_trial_in_the_train_phase():
    record = trial.run(trial_config("model=tiny-bert", "method=full", "train.learning_rate=1e30"), progress=False)
    assert record.status == "failed"
    assert record.error["phase"] == "train" and record.error["type"] == "NonFiniteLoss"
