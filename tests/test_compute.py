"""Compute figures: parameters counted as peft counts them (4-bit packed weights included), FLOPs of SDPA attention
on CPU, the GPU peak as a function of device and precision, the CPU peak timed idle over sizes in the trial's
dtype, and the exposed share of communication from a profiled step's timeline.

.venv/bin/python -m pytest -q tests/test_compute.py
"""

from __future__ import annotations

import pytest
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


@pytest.fixture
def tf32():
    """Sets torch's TF32 switch for fp32 matmuls (a setting object monkeypatch cannot undo) and puts it back."""
    before = torch.backends.cuda.matmul.allow_tf32
    yield lambda allowed: setattr(torch.backends.cuda.matmul, "allow_tf32", allowed)
    torch.backends.cuda.matmul.allow_tf32 = before


def _on_gpu(monkeypatch, name: str):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: name)


def test_the_gpu_peak_is_the_one_of_the_precision_trained_in(monkeypatch, tmp_path, tf32):
    from bench.trackers import peak_flops

    tf32(False)
    _on_gpu(monkeypatch, "NVIDIA H100 80GB HBM3")
    cuda = torch.device("cuda", 0)
    fp32, bf16 = (peak_flops.peak(cuda, tmp_path, p)["peak_flops_per_s"] for p in ("fp32", "bf16"))
    assert bf16 / fp32 > 10  # tensor cores against CUDA cores: an fp32 trial's mfu was about 15x too low
    assert peak_flops.peak(cuda, tmp_path, "fp16")["peak_flops_per_s"] == bf16
    tf32(True)  # fp32 matmuls then run on TF32 tensor cores
    allowed = peak_flops.peak(cuda, tmp_path, "fp32")
    assert fp32 < allowed["peak_flops_per_s"] < bf16 and "tf32" in allowed["peak_flops_source"]


def test_mfu_divides_by_the_peak_of_its_precision(monkeypatch, tmp_path, tf32):
    from bench import trial
    from bench.trackers import peak_flops

    tf32(False)
    _on_gpu(monkeypatch, "NVIDIA A100-SXM4-80GB")
    metrics = {"precision": "fp32", "train_flops_per_s": 1e12}
    trial.add_mfu(metrics, torch.device("cuda", 0), tmp_path)
    assert metrics["mfu"] == 1e12 / peak_flops.gpu_peak("NVIDIA A100-SXM4-80GB", "fp32")
    assert metrics["peak_flops_per_s"] < peak_flops.gpu_peak("NVIDIA A100-SXM4-80GB", "bf16")


def test_device_names_match_whole_words_only():
    from bench.trackers.peak_flops import gpu_entry, gpu_peak

    assert gpu_entry("NVIDIA L40") == ("L40",) and gpu_entry("NVIDIA L4") == ("L4",)  # "L40" contains "L4"
    assert gpu_peak("NVIDIA L40", "bf16") != gpu_peak("NVIDIA L4", "bf16")
    assert gpu_entry("NVIDIA A10G") is None and gpu_entry("NVIDIA A10") == ("A10",)
    assert gpu_entry("NVIDIA H100 PCIe") == ("H100", "PCIe") and gpu_entry("NVIDIA H100 80GB HBM3") == ("H100",)
    assert gpu_entry("NVIDIA A100-SXM4-40GB") == gpu_entry("NVIDIA A100 80GB PCIe") == ("A100",)
    assert gpu_entry("NVIDIA GeForce RTX 3090 Ti") is None  # another chip than the RTX 3090


def test_no_peak_for_a_precision_or_device_without_one_is_na(monkeypatch, tmp_path):
    from bench import trial
    from bench.trackers import peak_flops

    _on_gpu(monkeypatch, "Tesla T4")  # Turing: no bf16 tensor cores
    metrics = {"precision": "bf16", "train_flops_per_s": 1e12}
    trial.add_mfu(metrics, torch.device("cuda", 0), tmp_path)
    assert metrics["peak_flops_per_s"] is None and metrics["mfu"] is None
    assert "no bf16 peak" in metrics["peak_flops_source"]
    assert peak_flops.peak(torch.device("cuda", 0), tmp_path, "fp16")["peak_flops_per_s"] is not None
    _on_gpu(monkeypatch, "NVIDIA Some Future GPU")
    assert peak_flops.peak(torch.device("cuda", 0), tmp_path, "bf16")["peak_flops_per_s"] is None


def test_auto_precision_does_not_pick_emulated_bf16(monkeypatch):
    from bench import trial
    from tests.conftest import trial_config

    # A V100 or T4: torch reports bf16 "supported" unless emulation is left out.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert trial.precision(trial_config(), torch.device("cuda", 0)) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # Ampere and later
    assert trial.precision(trial_config(), torch.device("cuda", 0)) == "bf16"


def _event(name: str, start: float, end: float, parent=None, device: str = "CPU"):
    """A profiler event as torch.profiler's FunctionEvent shows it (microseconds)."""
    from types import SimpleNamespace

    event = SimpleNamespace(name=name, time_range=SimpleNamespace(start=start, end=end), cpu_parent=parent,
                            cpu_children=[], device_type=SimpleNamespace(name=device))
    if parent is not None:
        parent.cpu_children.append(event)
    return event


def test_the_comm_share_is_the_collective_time_no_compute_covers():
    from bench.distributed import comm

    # A CPU step of 100 us: gloo's all-reduce runs on its own thread from 0 to 80 while the main thread computes
    # (a linear whose matmul runs 10-50), then the main thread waits on it (80-100). FSDP's copy-in runs inside its
    # all-gather span: part of the collective, not compute that hides it.
    linear = _event("aten::linear", 5, 55)
    gather = _event("FSDP::all_gather_copy_in", 0, 4)
    events = [_event("gloo:all_reduce", 0, 80), linear, _event("aten::mm", 10, 50, parent=linear), gather,
              _event("aten::copy_", 1, 3, parent=gather), _event("c10d::wait", 80, 100)]
    figures = comm.share(events, on_device=False, window=(0, 100))
    assert figures["comm_seconds"] == pytest.approx(100e-6)  # all the time a collective was under way
    assert figures["comm_exposed_seconds"] == pytest.approx((100 - 40) * 1e-6)  # less the matmul's 40 us under it
    assert figures["comm_share"] == pytest.approx(0.6)  # was 1.0: every collective microsecond, overlapped or not


def test_collective_time_outside_the_profiled_step_is_cut_off():
    from bench.distributed import comm

    # The recording starts a step early: the Trainer's logging gathered the loss from every rank (waiting for the
    # slowest) before the profiled step began at 0; only its last 10 us fall inside the step.
    step = _event(comm.STEP_SPAN, 0, 100)
    events = [_event("gloo:all_gather", -400, 10), step, _event("aten::mm", 10, 100, parent=step)]
    figures = comm.share(events, on_device=False)
    assert figures["comm_exposed_seconds"] == pytest.approx(10e-6) and figures["comm_share"] == pytest.approx(0.1)
    assert comm.share([_event("aten::mm", 0, 1)], on_device=False)["comm_share"] is None  # the step was not seen


def test_on_gpu_only_device_kernels_count():
    from bench.distributed import comm

    events = [_event("ncclDevKernel_AllReduce", 0, 50, device="CUDA"), _event("ampere_sgemm", 0, 30, device="CUDA"),
              _event("aten::mm", 0, 100)]  # a CPU-side launch: no device time
    figures = comm.share(events, on_device=True, window=(0, 100))
    assert figures["comm_exposed_seconds"] == pytest.approx(20e-6) and figures["comm_share"] == pytest.approx(0.2)


def test_the_profiled_step_is_outside_the_memory_window_and_the_timed_steps():
    from bench.distributed.comm import profiled_step
    from bench.trackers.memory import MIN_WINDOW_STEPS, SETTLE_STEPS

    step = profiled_step(max_steps=6, warmup_steps=1, measure_flops=True)
    # the last; the profiler's warm-up runs over step 4; the window is steps 0-1, step 2 settles malloc, 3 is timed
    assert step == 5 and step - 1 > MIN_WINDOW_STEPS + SETTLE_STEPS
    assert profiled_step(max_steps=5, warmup_steps=1, measure_flops=True) is None  # no timed step would be left


def test_a_left_out_step_is_not_timed():
    from bench.trackers.throughput import CountingCollator, ThroughputCallback

    counter = CountingCollator(lambda features: features)
    counter.batches = [(10, 16, 2)] * 4
    speed = ThroughputCallback(counter, warmup_steps=1, device="cpu", measure_flops=False)
    speed.step_seconds = [9.0, 1.0, 1.0, 5.0]  # the last step ran under the profiler
    speed.leave_out(3)
    result = speed.result()
    assert result["train_timed_steps"] == 2 and result["train_seconds"] == 2.0
    assert result["train_tokens_per_s"] == 10.0


def test_the_cpu_peak_is_the_best_over_sizes_in_the_trials_dtype(monkeypatch):
    from bench.trackers import peak_flops

    rates = {16: 1e9, 32: 4e9, 64: 3e9}  # a BLAS that peaks on mid-sized products
    seen = []

    def timed(a, b):
        seen.append(a.dtype)
        return 2 * a.shape[0] ** 3 / rates[a.shape[0]]

    monkeypatch.setattr(peak_flops, "MATMUL_SIZES", tuple(rates))
    monkeypatch.setattr(peak_flops, "_timed", timed)
    assert peak_flops.time_matmul(torch.bfloat16) == pytest.approx(max(rates.values()))
    assert set(seen) == {torch.bfloat16}


def test_a_peak_timed_beside_other_work_is_under_load(tmp_path, monkeypatch):
    from bench.trackers import peak_flops

    monkeypatch.setattr(peak_flops, "time_matmul", lambda *a: 1e11)
    monkeypatch.setattr(peak_flops.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(peak_flops, "busy_while", lambda work: (work(), 0.0))
    monkeypatch.setattr(peak_flops, "busy_cores", lambda *a: 1.0)  # one trial on a 64-core machine: cores to spare
    assert peak_flops.measure_and_keep(tmp_path, 1, wait_s=0.1)["under_load"]  # but not idle
    monkeypatch.setattr(peak_flops, "busy_cores", lambda *a: 0.0)  # idle before the timing...
    monkeypatch.setattr(peak_flops, "busy_while", lambda work: (work(), 1.0))  # ...a trial started during it
    assert peak_flops.measure_and_keep(tmp_path / "again", 1, wait_s=0.1)["under_load"]


def test_a_cpu_trial_reads_the_peak_of_its_own_dtype(tmp_path, monkeypatch):
    from bench.trackers import peak_flops

    monkeypatch.setattr(peak_flops, "busy_cores", lambda *a: 0.0)
    monkeypatch.setattr(peak_flops, "busy_while", lambda work: (work(), 0.0))
    monkeypatch.setattr(peak_flops, "time_matmul", lambda dtype: {torch.float32: 1e11, torch.bfloat16: 3e11}[dtype])
    threads = torch.get_num_threads()
    peak_flops.measure_and_keep(tmp_path, threads, dtype="fp32")
    assert peak_flops.peak("cpu", tmp_path, "bf16")["peak_flops_per_s"] is None  # fp32's peak is not bf16's
    peak_flops.measure_and_keep(tmp_path, threads, dtype="bf16")
    bf16 = peak_flops.peak("cpu", tmp_path, "bf16")
    assert bf16["peak_flops_per_s"] == 3e11 and "bf16" in bf16["peak_flops_source"]
    assert peak_flops.peak("cpu", tmp_path, "fp32")["peak_flops_per_s"] == 1e11  # auto on CPU is fp32 too
    assert peak_flops.peak("cpu", tmp_path, "auto")["peak_flops_per_s"] == 1e11


def test_a_distributed_cpu_trial_times_the_peak_at_its_ranks_thread_count(tmp_path, monkeypatch):
    import os

    from bench.launch import ranks as launch
    from bench.launch import shared as prepare
    from bench.trackers import peak_flops
    from tests.conftest import trial_config

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    cfg = trial_config("model=tiny-llama", "train.distributed=ddp", "train.nproc=2", f"cache_dir={tmp_path}")
    assert prepare.trial_threads(cfg) == 4
    with launch._rank_environment(cfg):
        assert os.environ["OMP_NUM_THREADS"] == "4"  # what each rank computes with, and reads the peak at
    assert prepare._cold(cfg)["peak"]
    monkeypatch.setattr(peak_flops, "busy_cores", lambda *a: 0.0)
    monkeypatch.setattr(peak_flops, "busy_while", lambda work: (work(), 0.0))
    monkeypatch.setattr(peak_flops, "time_matmul", lambda *a: 1e11)
    peak_flops.measure_and_keep(tmp_path, prepare.trial_threads(cfg), dtype=prepare.trial_dtype(cfg))
    assert not prepare._cold(cfg)["peak"]  # the prepare step kept the peak the ranks look up


def test_the_profiler_warms_up_a_step_early_and_both_steps_stay_outside_memory():
    from contextlib import contextmanager

    from bench.distributed.comm import CommProfiler

    log = []

    @contextmanager
    def paused():
        log.append("pause")
        yield
        log.append("resume")

    profiler = CommProfiler(step=4, device=torch.device("cpu"), outside_memory=paused)
    a = torch.randn(64, 64)
    for step in range(5):
        profiler.on_step_begin(None, None, None)
        log.append(step)
        a @ a
        profiler.on_step_end(None, None, None)
    assert log == [0, 1, 2, "pause", 3, 4, "resume"]
    assert profiler.untimed_steps == (3, 4)
    assert profiler.figures["comm_share"] == 0.0 and profiler.figures["comm_seconds"] == 0.0  # one process: none
