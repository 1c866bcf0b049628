"""Trackers measure what they claim: hand-counted parameters, a known allocation, latency, storage.

pytest tests/test_trackers.py
"""

from __future__ import annotations

import torch
import torch.nn as nn

from bench.trackers import latency, params, storage
from bench.trackers.memory import MemoryTracker, breakdown


def test_parameter_counts_match_a_hand_count():
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 3, bias=False))
    model[0].weight.requires_grad_(False)
    counts = params.count(model)
    assert counts["total_params"] == 10 * 20 + 20 + 20 * 3
    assert counts["trainable_params"] == 20 + 20 * 3
    assert counts["trainable_fraction"] == (20 + 60) / 280


def test_tied_weights_are_counted_once():
    embedding = nn.Embedding(100, 8)
    head = nn.Linear(8, 100, bias=False)
    head.weight = embedding.weight
    assert params.count(nn.ModuleList([embedding, head]))["total_params"] == 800


def test_memory_tracker_sees_a_known_allocation_within_10_percent():
    size_bytes = 400 * 2**20
    with MemoryTracker("cpu") as tracker:
        block = torch.ones(size_bytes // 4, dtype=torch.float32)  # ones: pages are touched, so RSS grows
        block.add_(1)
        del block
    grown = tracker.peak_bytes - tracker.baseline_bytes
    assert abs(grown - size_bytes) / size_bytes < 0.10, grown


def test_memory_breakdown_counts_weights_grads_and_optimizer_state():
    model = nn.Linear(100, 100)  # 10,100 float32 parameters
    model.bias.requires_grad_(False)
    optimizer = torch.optim.AdamW([model.weight])
    model(torch.randn(4, 100)).sum().backward()
    optimizer.step()
    parts = breakdown(model, optimizer)
    assert parts["mem_weights_bytes"] == 10_100 * 4
    assert parts["mem_grads_bytes"] == 10_000 * 4
    # AdamW: exp_avg and exp_avg_sq per parameter, plus one scalar step counter.
    assert parts["mem_optimizer_bytes"] == 2 * 10_000 * 4 + 4


def test_latency_percentiles_are_ordered():
    model = nn.Linear(64, 64)
    result = latency.measure(_Wrapped(model), {"x": torch.randn(8, 64)}, repeats=10, warmup=2, device="cpu")
    assert 0 < result["latency_ms_p50"] <= result["latency_ms_p90"]


class _Wrapped(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)


def test_checkpoint_bytes_cover_only_trainable_tensors():
    model = nn.Sequential(nn.Linear(256, 256), nn.Linear(256, 4))
    model[0].requires_grad_(False)
    stored = storage.checkpoint_bytes(model)
    trainable_bytes = (256 * 4 + 4) * 4
    assert trainable_bytes <= stored < trainable_bytes + 4096  # safetensors adds a small JSON header


def test_cpu_peak_keeps_the_best_measurement(tmp_path):
    """A peak read low on a busy machine is replaced by the next better one; a better cached one is kept."""
    import json
    import platform

    import torch

    from bench.trackers.peak_flops import cpu_peak

    path = tmp_path / "peak_flops" / f"cpu-{platform.machine()}-{torch.get_num_threads()}t.json"
    path.parent.mkdir(parents=True)
    identity = f"{platform.processor()}|{torch.__version__}"
    path.write_text(json.dumps({"identity": identity, "flops_per_s": 1.0}))  # as if timed on a saturated machine
    measured = cpu_peak(tmp_path)
    assert measured > 1e6 and json.loads(path.read_text())["flops_per_s"] == measured
    path.write_text(json.dumps({"identity": identity, "flops_per_s": 1e18}))  # better than this machine can do now
    assert cpu_peak(tmp_path) == 1e18
