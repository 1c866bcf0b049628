"""Generation latency: time to first token and per-token decode time, read from the greedy loop's token marks.

pytest tests/test_decode_timing.py
"""

from __future__ import annotations

import pytest
import torch

from bench.tasks import generation
from bench.trackers import decode


class Named:
    def __init__(self, name: str):
        self.name = name

    def eval(self):
        return self


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _fake_decode(clock: Clock, prefill_s: dict, step_s: dict):
    """A decode whose prefill and steps take known times per model (no sleeping: the clock is advanced)."""
    def run(model, batch, new_tokens, on_token):
        clock.now += prefill_s[model.name]
        on_token(0)
        for step in range(1, new_tokens):
            clock.now += step_s[model.name]
            on_token(step)
    return run


def test_ttft_is_the_prefill_and_decode_time_is_per_token_after_the_first(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(decode.time, "perf_counter", clock)
    run = _fake_decode(clock, {"a": 0.2, "b": 0.1}, {"a": 0.03, "b": 0.01})
    models = {"": Named("a"), "_merged": Named("b")}
    figures = decode.measure_interleaved(run, models, {}, repeats=10, warmup=1, device="cpu", new_tokens=5)
    assert figures["ttft_ms_p50"] == pytest.approx(200) and figures["ttft_ms_p50_merged"] == pytest.approx(100)
    assert figures["decode_ms_per_token_p50"] == pytest.approx(30)
    assert figures["decode_ms_per_token_p50_merged"] == pytest.approx(10)
    assert figures["decode_new_tokens"] == 5
    assert 1 <= figures["decode_repeats_run"] <= 10  # identical timings are tight at once: stopped early


def test_the_timing_decoder_produces_exactly_the_new_tokens_asked_for():
    class Tok:
        eos_token_id, pad_token_id = 0, 0

    class Always0(torch.nn.Module):  # predicts end-of-sequence at once: timing must not stop there
        config = None

        def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=None, cache=None, **kwargs):
            logits = torch.zeros(input_ids.shape[0], input_ids.shape[1], 4)
            logits[..., 0] = 1
            return type("Out", (), {"logits": logits, "cache": cache})()

    marks = []
    batch = {"input_ids": torch.tensor([[1, 2, 3]]), "attention_mask": torch.ones(1, 3, dtype=torch.long)}
    tokens = generation.timing_decoder(Tok())(Always0(), batch, 6, marks.append)
    assert tokens.shape == (1, 6) and marks == list(range(6))


def test_decode_repeats_stop_at_their_ceiling_when_never_tight(monkeypatch):
    clock, calls = Clock(), []

    def noisy(model, batch, new_tokens, on_token):  # every other repeat twice as slow: the median is never tight
        calls.append(1)
        for step in range(new_tokens):
            clock.now += 0.01 * (1 + len(calls) % 2)
            on_token(step)

    monkeypatch.setattr(decode.time, "perf_counter", clock)
    figures = decode.measure_interleaved(noisy, {"": Named("a")}, {}, repeats=50, warmup=1, device="cpu")
    assert figures["decode_repeats_run"] == decode.DECODE_MAX_REPEATS < 50
