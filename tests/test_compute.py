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


def _step_flops(attn_implementation: str, length: int = 256) -> int:
    """FLOPs of one training step (forward and backward) of a tiny Llama on a padded batch, as the trial counts them."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import LlamaConfig, LlamaForCausalLM

    from bench.trackers.throughput import register_cpu_attention_flops

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=256, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, intermediate_size=64, max_position_embeddings=512,
                         attn_implementation=attn_implementation)
    model = LlamaForCausalLM(config)
    input_ids = torch.randint(0, 256, (2, length))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, length // 2:] = 0  # padding, as the collator leaves it
    register_cpu_attention_flops()  # what ThroughputCallback does before it counts
    with FlopCounterMode(display=False) as counter:
        model(input_ids=input_ids, attention_mask=attention_mask, labels=input_ids).loss.backward()
    return counter.get_total_flops()


def test_sdpa_attention_counts_the_flops_eager_attention_counts():
    eager, sdpa = _step_flops("eager"), _step_flops("sdpa")
    assert abs(sdpa - eager) / eager < 0.01, (sdpa, eager)  # attention is about half of this tiny model's FLOPs
