"""GPU paths on a real CUDA device: mixed precision over float32 weights, the merge check in bf16, NVML on the
trial's own GPU (memory, energy), the allocator breakdown, QLoRA's quantized "before". Their CPU counterparts run
against mocks in tests/test_trackers.py and tests/test_trial.py.

pytest -m gpu tests/test_gpu.py
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from bench.trackers import energy, nvml
from bench.launch.trial import run_trial
from tests.conftest import trial_config

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
PARTS = ("mem_weights_bytes", "mem_grads_bytes", "mem_optimizer_bytes", "mem_other_bytes", "mem_activations_bytes",
         "mem_transient_bytes")


def _run(*overrides: str):
    record = run_trial(trial_config("model=tiny-llama", "train.device=cuda", *overrides), progress=False)
    assert record.status == "ok", record.error
    return record.metrics


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_float32_weights(precision):
    m = _run("method=full", f"train.precision={precision}")
    assert m["precision"] == precision
    assert m["mem_weights_bytes"] >= 4 * m["total_params"]  # float32 master weights, not half-precision ones


def test_lora_merges_within_the_bf16_tolerance_and_the_breakdown_adds_up():
    m = _run("method=lora", "train.precision=bf16")
    assert m["merge_ok"] is True and m["latency_ms_p50_merged"] is not None
    assert m["mem_source"] == "cuda_allocator" and sum(m[p] for p in PARTS) == m["peak_mem_bytes"]
    assert m["mem_other_bytes"] >= 0 and m["mem_activations_bytes"] > 0


def test_nvml_reads_this_gpu_and_this_process():
    handle = nvml.handle(torch.device("cuda", 0))
    if handle is None:
        pytest.skip("NVML is not available")
    pynvml = nvml.module()
    assert pynvml.nvmlDeviceGetUUID(handle).endswith(str(torch.cuda.get_device_properties(0).uuid))
    m = _run("method=lora")
    assert m["peak_mem_nvml_bytes"] > 0
    if energy.reader(torch.device("cuda", 0)) is not None:
        assert m["energy_joules_train"] > 0 and m["energy_source"].startswith("nvml")


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes")
def test_qlora_forgetting_starts_from_the_quantized_base():
    m = _run("method=qlora", "task=bbc-headline", "task.max_eval_samples=4", "task.max_new_tokens=4")
    assert m["probe_before_source"] == "quantized base"
    assert m["forgetting"] is not None


def test_auto_precision_and_the_mfu_peak_follow_this_device():
    from bench.trackers import peak_flops

    native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    m = _run("method=lora", "train.precision=auto")
    assert m["precision"] == ("bf16" if native_bf16 else "fp32")
    matmul = peak_flops.gpu_matmul_precision(m["precision"])
    assert m["peak_flops_per_s"] == peak_flops.gpu_peak(torch.cuda.get_device_name(0), matmul)
    assert (m["mfu"] is None) == (m["peak_flops_per_s"] is None)


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes")
def test_qlora_counts_its_4bit_weights_as_weights():
    full, qlora = _run("method=full"), _run("method=qlora")
    assert qlora["total_params"] - qlora["trainable_params"] == full["total_params"]  # the frozen base, unpacked
