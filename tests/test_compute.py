"""Compute figures: parameters counted as peft counts them (4-bit packed weights included), FLOPs of SDPA attention
on CPU, the GPU peak as a function of device and precision, the CPU peak timed idle over sizes in the trial's
dtype, and the exposed share of communication from a profiled step's timeline.

.venv/bin/python -m pytest -q tests/test_compute.py
"""

from __future__ import annotations

import torch
from torch import nn

from bench.trackers import params


class Params4bit(nn.Parameter):  # the name peft recognises
    """Stands in for bitsandbytes' Params4bit: two 4-bit weights packed per uint8 element, numel() = weights / 2."""

    def __new__(cls, weights: int):
        return super().__new__(cls, torch.zeros(weights // 2, 1, dtype=torch.uint8), requires_grad=False)


def test_packed_4bit_weights_count_as_weights_not_bytes():
    model = nn.Module()
    model.base = nn.Linear(16, 16, bias=False)
    model.base.weight = Params4bit(16 * 16)  # a quantized frozen base weight: 256 weights in 128 bytes
    model.lora = nn.Linear(16, 2, bias=False)  # the trainable adapter
    counts = params.count(model)
    assert counts["total_params"] == 16 * 16 + 32
    assert counts["trainable_params"] == 32
    assert counts["trainable_fraction"] == 32 / (256 + 32)
