"""Latency and merging: one percentile function (one repeat is a figure), repeats interleaved between the unmerged and
the merged model and stopped once the median is known, and a merge check that a merge folding nothing cannot pass.

.venv/bin/python -m pytest -q tests/test_latency_merge.py
"""

from __future__ import annotations

import statistics
from contextlib import nullcontext

import peft
import pytest
import torch
from torch import nn

from bench.trial import Measured, measuring
from bench.serve import traffic
from bench.trackers import latency, merge
from bench.launch.trial import run_trial
from tests.conftest import trial_config


def test_one_percentile_function_serves_training_latency_and_serving():
    assert traffic.percentiles is latency.percentiles
    assert latency.percentiles([4.0]) == (4.0, 4.0)  # statistics.quantiles needs two points before Python 3.13
    p50, p90 = latency.percentiles([1.0, 2.0, 3.0, 4.0, 10.0])
    assert p50 == 3.0 and 4.0 < p90 < 10.0


def test_a_trial_with_one_latency_repeat_records_it():
    record = run_trial(trial_config("model=tiny-bert", "method=lora", "train.latency_repeats=1", "train.threads=1"),
                       progress=False)
    m = record.metrics
    assert record.status == "ok", record.error
    assert m["latency_repeats_run"] == 1 and m["latency_ms_p50"] == m["latency_ms_p90"] > 0


class _Named(nn.Module):
    """Appends its name to a shared list on every forward pass."""

    def __init__(self, name: str, calls: list):
        super().__init__()
        self.name, self.calls = name, calls

    def forward(self, **batch):
        self.calls.append(self.name)


def test_unmerged_and_merged_repeats_are_interleaved_in_alternating_order(monkeypatch):
    monkeypatch.setattr(latency, "tight", lambda values: False)  # every repeat runs
    calls: list[str] = []
    figures = latency.measure_interleaved({"": _Named("unmerged", calls), "_merged": _Named("merged", calls)}, {},
                                          repeats=4, warmup=1, device="cpu")
    assert calls == ["unmerged", "merged", "merged", "unmerged"] * 2 + ["unmerged", "merged"]
    assert figures["latency_repeats_run"] == 4
    assert {"latency_ms_p50", "latency_ms_p90", "latency_ms_p50_merged", "latency_ms_p90_merged"} <= set(figures)


def _scripted(monkeypatch, timings_ms):
    """latency's clock reads the given timings in turn, whatever the model does."""
    clock = iter(timings_ms)
    monkeypatch.setattr(latency, "_timed_ms", lambda model, batch, device: next(clock))


def test_repeats_stop_once_the_median_is_known_and_run_to_the_cap_while_it_is_not(monkeypatch):
    steady = [100.0 + 0.1 * (i % 3) for i in range(100)]
    _scripted(monkeypatch, steady)
    quiet = latency.measure(_Named("m", []), {}, repeats=50, warmup=2, device="cpu")
    assert quiet["latency_repeats_run"] == latency.LATENCY_MIN_REPEATS
    noisy = [100.0 if i % 2 else 160.0 for i in range(100)]
    _scripted(monkeypatch, noisy)
    loud = latency.measure(_Named("m", []), {}, repeats=30, warmup=2, device="cpu")
    assert loud["latency_repeats_run"] == 30


def test_the_median_interval_covers_as_the_binomial_says():
    assert latency.median_interval([1.0] * 5) is None  # 2 / 2**5 > 5%: no 95% interval from five points
    values = list(range(1, 11))
    assert latency.median_interval(values) == (2, 9)  # n = 10: ranks 2 and 9 (P(B < 2) = 1.1%)
    low, high = latency.median_interval(values)
    assert low <= statistics.median(values) <= high


def _tiny_lora(b_scale: float):
    """A tiny LoRA model whose adapter changes the outputs by about b_scale."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=200, hidden_size=32, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=64, num_labels=3))
    tuned = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=["query", "value"]))
    for name, parameter in tuned.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_(0, b_scale)
    tuned.eval()
    return tuned, {"input_ids": torch.randint(5, 100, (2, 16)), "attention_mask": torch.ones(2, 16, dtype=torch.long)}


def test_a_merge_that_folds_nothing_fails_the_check_even_when_the_adapter_changes_little(monkeypatch):
    model, batch = _tiny_lora(b_scale=1e-4)  # an effect far below the rounding tolerance (1e-3 of the largest logit)
    monkeypatch.setattr(peft.LoraModel, "merge_and_unload", lambda self, **kw: self.unload())  # drops it unfolded
    _, check = merge.merge_checked(model, batch, torch.float32, nullcontext)
    assert check["merge_max_abs_diff"] <= check["merge_tolerance"]  # the rounding bound alone would pass it
    assert check["merge_ok"] is False and "did not fold" in check["merge_error"]
    assert check["merge_max_abs_diff"] == pytest.approx(check["merge_effect_max_abs_diff"])


def test_a_real_merge_passes_and_leaves_the_unmerged_model_as_it_was():
    model, batch = _tiny_lora(b_scale=1e-2)
    with torch.inference_mode():
        before = model(**batch).logits
    merged, check = merge.merge_checked(model, batch, torch.float32, nullcontext)
    assert check["merge_ok"] is True, check
    assert check["merge_max_abs_diff"] <= merge.MERGE_EFFECT_SHARE * check["merge_effect_max_abs_diff"]
    assert merged is not model and isinstance(model, peft.PeftModel)
    with torch.inference_mode():
        assert torch.equal(model(**batch).logits, before)


def test_a_failed_merge_check_leaves_merged_figures_na_and_probes_the_unmerged_model(monkeypatch):
    """merge_ok false: no merged latency, and the forgetting probe scores the model that was checked, unmerged."""
    class Unusable(nn.Module):
        def forward(self, **batch):
            raise AssertionError("a merged model whose check failed must not be timed or probed")

    monkeypatch.setattr(merge, "merge_checked", lambda model, *a: (Unusable(), {"merge_ok": False,
                                                                                "merge_error": "did not fold"}))
    probed = []
    monkeypatch.setattr(measuring, "probe_forgetting",
                        lambda probe, base, model, *_: probed.append(model) or Measured())
    timed = []
    original = latency.measure_interleaved
    monkeypatch.setattr(latency, "measure_interleaved", lambda models, *a: timed.append(models) or original(models, *a))
    record = run_trial(trial_config("model=tiny-bert", "method=lora", "train.threads=1"), progress=False)
    m = record.metrics
    assert record.status == "ok", record.error
    assert m["merge_ok"] is False and m["latency_ms_p50_merged"] is None and m["latency_ms_p50"] > 0
    assert len(probed) == 1 and not isinstance(probed[0], Unusable)
    assert [set(models) for models in timed] == [{""}]


def test_a_passed_merge_is_timed_in_the_same_loop_as_the_unmerged_model(monkeypatch):
    timed = []
    original = latency.measure_interleaved
    monkeypatch.setattr(latency, "measure_interleaved", lambda models, *a: timed.append(models) or original(models, *a))
    record = run_trial(trial_config("model=tiny-bert", "method=lora", "train.threads=1"), progress=False)
    m = record.metrics
    assert record.status == "ok" and m["merge_ok"] is True, (record.error, m.get("merge_error"))
    assert [set(models) for models in timed] == [{"", "_merged"}]  # one loop, not two blocks
    assert m["latency_ms_p50_merged"] > 0 and 1 <= m["latency_repeats_run"] <= 3  # FAST: train.latency_repeats=3


def test_under_bf16_the_merge_is_checked_against_the_adapters_effect_in_float32(monkeypatch):
    """bf16 rounding of the outputs is larger than a lightly trained adapter's effect: compared in bf16, a correct
    merge would fail; in float32 it passes, and a merge that folds nothing still fails."""
    model, batch = _tiny_lora(b_scale=2e-3)
    bf16 = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    _, good = merge.merge_checked(model, batch, torch.bfloat16, bf16)
    assert good["merge_ok"] is True, good
    assert good["merge_max_abs_diff"] > merge.MERGE_EFFECT_SHARE * good["merge_effect_max_abs_diff"]  # bf16 noise
    monkeypatch.setattr(peft.LoraModel, "merge_and_unload", lambda self, **kw: self.unload())
    _, bad = merge.merge_checked(model, batch, torch.bfloat16, bf16)
    assert bad["merge_ok"] is False and "did not fold" in bad["merge_error"]
