"""Trackers measure what they claim: hand-counted parameters, a known allocation, latency, storage, a peak that adds
up, the kernel's high-water mark, NVML on the right GPU, energy from RAPL/NVML counters, FLOPs per padded token,
a kept peak FLOP/s, and a merge check that never loses a trial. GPU paths run here against mocks.

pytest tests/test_trackers.py
"""

from __future__ import annotations

import json
import sys
import threading
import time
import types
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from bench.trackers import energy, latency, memory, merge, nvml, params, peak_flops, storage
from bench.trackers.memory import MemoryTracker, breakdown
from bench.trackers.throughput import CountingCollator, ThroughputCallback


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


def test_the_kernels_high_water_mark_catches_a_peak_between_two_samples(monkeypatch):
    """A spike shorter than the sampling interval is missed by the sampler; VmHWM (reset at the start) sees it."""
    if not memory.reset_high_water_mark():
        pytest.skip("/proc/self/clear_refs is not writable here")
    monkeypatch.setattr(memory, "SAMPLE_INTERVAL_S", 3600.0)  # the sampler reads only at start and stop
    size_bytes = 300 * 2**20
    with MemoryTracker("cpu") as tracker:
        block = torch.ones(size_bytes // 4)
        del block
    assert tracker.sampled_peak_bytes - tracker.baseline_bytes < size_bytes / 2  # the sampler missed it
    assert tracker.peak_bytes - tracker.baseline_bytes > 0.9 * size_bytes  # the kernel's mark did not
    assert tracker.peak_bytes == tracker.hwm_peak_bytes


def _samplers() -> int:
    """Memory-sampling threads alive: one wakes every 10 ms and takes the GIL, which slows the main thread on a
    loaded machine, so none may run where training is timed or a checkpoint scored."""
    return sum(thread.name == "memory-sampler" for thread in threading.enumerate())


def test_work_inside_paused_stays_out_of_the_peak_and_the_peak_before_it_is_kept():
    """Scoring a checkpoint between training steps allocates; a paused block keeps it out of the training peak,
    whichever reading (sampler or the kernel's mark) would have caught it."""
    size_bytes = 300 * 2**20
    with MemoryTracker("cpu") as tracker:
        trained = torch.ones(size_bytes // 4 // 3)  # a 100 MiB "training" peak before the pause
        del trained
        assert _samplers() == 1
        with tracker.paused():
            assert _samplers() == 0  # nothing wakes beside the scoring
            scored = torch.ones(size_bytes // 4)  # a 300 MiB "checkpoint" inside it
            del scored
        assert _samplers() == 1
        after = torch.ones(size_bytes // 4 // 6)  # 50 MiB after it
        del after
    grown = tracker.peak_bytes - tracker.baseline_bytes
    assert 0.9 * size_bytes / 3 < grown < 0.6 * size_bytes, grown / 2**20  # the 100 MiB peak, not the 300


def test_the_cpu_peak_is_final_when_its_window_ends_and_malloc_then_keeps_freed_blocks(monkeypatch):
    """The window's peak stands; what the timed steps allocate after it is not counted, and they run under glibc's
    fast policy, untrimmed (the exact one hands freed activations back to the kernel and slows a step by 40%)."""
    policies = []
    monkeypatch.setattr(memory, "keep_freed_memory", lambda trim=True: policies.append("keep" if trim else "untrimmed"))
    size_bytes = 300 * 2**20
    tracker = MemoryTracker("cpu", window_steps=0)
    assert tracker.window_steps == memory.MIN_WINDOW_STEPS  # the optimizer state exists from the second step
    (_, window) = tracker.callbacks()  # saved activations, then the window
    step = SimpleNamespace(global_step=1)
    with tracker:
        in_window = torch.ones(size_bytes // 4 // 3)  # 100 MiB during the window
        del in_window
        window.on_step_end(None, step, None)
        assert policies == []  # one step is not the window yet
        step.global_step = 2
        window.on_step_end(None, step, None)
        assert _samplers() == 0  # no thread wakes beside the timed steps
        after = torch.ones(size_bytes // 4)  # 300 MiB in a timed step
        del after
    assert policies == ["untrimmed"]
    grown = tracker.peak_bytes - tracker.baseline_bytes
    assert 0.9 * size_bytes / 3 < grown < 0.6 * size_bytes, grown / 2**20
    assert tracker.result(torch.nn.Linear(2, 2), None)["mem_window_steps"] == 2
    # the caching allocator: every step counts, no window (saved activations are measured on both devices)
    assert [type(c).__name__ for c in MemoryTracker("cuda", window_steps=3).callbacks()] == ["_SavedActivations"]


def mib_printed(script: str, *args: str) -> float:
    """The MiB figure `script` prints last, run in a fresh interpreter: malloc's state there is the script's own."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).parent.parent)
    return float(done.stdout.split()[-1])


HEAP_HISTORY = """
import sys, psutil, torch
from bench.trackers.memory import return_freed_memory
if sys.argv[1] == "fixed":
    assert return_freed_memory()
rss = lambda: psutil.Process().memory_info().rss
block = torch.ones(2**21)  # 8 MiB, freed: glibc raises its mmap threshold past it, by default
del block
before = rss()
blocks = [torch.ones(2**21) for _ in range(40)]
kept = blocks[1::2]  # 160 MiB live, 160 MiB freed between them
del blocks
print((rss() - before) / 2**20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_tensor_memory_leaves_the_rss_whatever_the_heap_history():
    """By default glibc keeps freed blocks once its dynamic threshold has risen, so a peak depends on what the
    process allocated before (cold and warm sweeps read 200 MiB apart); with fixed thresholds RSS follows the
    live tensors."""
    grown = {mode: mib_printed(HEAP_HISTORY, mode) for mode in ("default", "fixed")}
    assert grown["default"] > 250  # the 160 MiB freed stayed
    assert 150 < grown["fixed"] < 190  # only the 160 MiB live


AFTER_A_FAST_TRIAL = """
import psutil, torch
from bench.trackers.memory import MemoryTracker, keep_freed_memory
assert keep_freed_memory()  # where an earlier trial's window left this process
blocks = [torch.ones(2**20) for _ in range(128)]  # 512 MiB in 4 MiB blocks, freed: the heap keeps some
del blocks
with MemoryTracker("cpu") as tracker:
    blocks = [torch.ones(2**20) for _ in range(64)]  # 256 MiB live during the trial
    del blocks
print((tracker.peak_bytes - tracker.baseline_bytes) / 2**20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_trial_after_one_under_the_fast_policy_sees_all_it_allocates():
    """Freed heap kept under the fast policy went into the next trial's baseline and was reused unseen by its
    training: a second trial in one process read activations of -20 MiB. The tracker hands it back first."""
    grown_mib = mib_printed(AFTER_A_FAST_TRIAL)
    assert 250 < grown_mib < 280


A_STEPS_ACTIVATIONS_FREED = """
import sys, psutil, torch
from bench.trackers.memory import keep_freed_memory
assert keep_freed_memory(trim=sys.argv[1] == "trim")
rss = lambda: psutil.Process().memory_info().rss
blocks = [torch.ones(2**21) for _ in range(40)]  # a step's activations: 320 MiB in 8 MiB blocks, at the heap's top
before = rss()
del blocks
print((before - rss()) / 2**20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_the_timed_steps_policy_keeps_a_steps_freed_activations_for_the_next():
    """glibc's trim rule hands freed memory at the heap's top back to the kernel, and the next step faults it in
    again (~50,000 page faults a step on smollm2-135m); the timed steps' policy never trims."""
    returned_mib = {mode: mib_printed(A_STEPS_ACTIVATIONS_FREED, mode) for mode in ("trim", "untrimmed")}
    assert returned_mib["trim"] > 250  # glibc's rule: back to the kernel
    assert returned_mib["untrimmed"] < 10  # kept for the next step


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


def _measured_step(tracker: MemoryTracker, model, step) -> None:
    """`step()` as the Trainer's step that the tracker measures saved activations on."""
    saved = tracker.callbacks()[0]
    state = SimpleNamespace(global_step=tracker.activations_step - 1)
    saved.on_step_begin(None, state, None, model=model)
    step()
    saved.on_step_end(None, state, None)


def test_the_parts_of_the_peak_add_up_to_it_on_cpu():
    model = nn.Linear(256, 256)
    optimizer = torch.optim.AdamW(model.parameters())
    with MemoryTracker("cpu") as tracker:
        _measured_step(tracker, model, lambda: model(torch.randn(64, 256)).sum().backward())
        optimizer.step()
    result = tracker.result(model, optimizer)
    parts = ("mem_weights_bytes", "mem_grads_bytes", "mem_optimizer_bytes", "mem_other_bytes", "mem_activations_bytes",
             "mem_transient_bytes")
    assert sum(result[p] for p in parts) == result["peak_mem_bytes"]
    assert result["mem_activations_bytes"] == 64 * 256 * 4  # the input the linear keeps for its weight's gradient
    assert result["mem_other_bytes"] > 50 * 2**20  # the Python runtime with torch loaded: well above 50 MiB


class _FakeCuda:
    """torch.cuda as the memory tracker sees it: a baseline holding more than the weights, and a peak."""

    def __init__(self, baseline: int, peak: int):
        self.baseline, self.peak = baseline, peak

    def install(self, monkeypatch):
        for name, value in (("synchronize", lambda *a: None), ("reset_peak_memory_stats", lambda *a: None),
                            ("empty_cache", lambda: None), ("max_memory_reserved", lambda *a: self.peak),
                            ("memory_allocated", lambda *a: self.baseline),
                            ("max_memory_allocated", lambda *a: self.peak)):
            monkeypatch.setattr(torch.cuda, name, value)
        monkeypatch.setattr(memory, "nvml_memory_readers", lambda device: None)


def test_gpu_activations_are_the_peak_less_the_pre_training_baseline(monkeypatch):
    """Anything resident before training (a probe's copy, quantization state) is in the baseline, not in the
    activations: activations + transient = peak - baseline - grads - optimizer."""
    model = nn.Linear(1024, 1024)  # 4 MiB of weights
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 1024)).sum().backward()
    optimizer.step()
    weights = 1024 * 1025 * 4
    extra_resident = 100 * 2**20
    fake = _FakeCuda(baseline=weights + extra_resident, peak=weights + extra_resident + 3 * weights + 7 * 2**20)
    fake.install(monkeypatch)
    with MemoryTracker(torch.device("cuda", 0)) as tracker:
        _measured_step(tracker, model, lambda: model(torch.randn(2, 1024)).sum().backward())
    result = tracker.result(model, optimizer)
    assert result["mem_source"] == "cuda_allocator"
    assert result["mem_other_bytes"] == extra_resident
    assert result["mem_activations_bytes"] + result["mem_transient_bytes"] == 7 * 2**20 + 3 * weights - result[
        "mem_grads_bytes"] - result["mem_optimizer_bytes"]
    parts = ("mem_weights_bytes", "mem_grads_bytes", "mem_optimizer_bytes", "mem_other_bytes", "mem_activations_bytes",
             "mem_transient_bytes")
    assert sum(result[p] for p in parts) == result["peak_mem_bytes"]


def _fake_pynvml(monkeypatch, uuid_ok: bool = True, processes=(), energy_mj: list | None = None):
    """A pynvml module with two GPUs: index 0 is someone else's, the trial's GPU is NVML's index 1."""
    fake = types.ModuleType("pynvml")
    handles = {"GPU-1111": "handle-of-nvml-1", "00000000:41:00.0": "handle-of-nvml-1"}
    fake.nvmlInit = lambda: None
    fake.nvmlDeviceGetHandleByIndex = lambda index: f"handle-of-nvml-{index}"

    def by_uuid(uuid):
        if not uuid_ok:
            raise RuntimeError("NVML_ERROR_NOT_FOUND")
        return handles[uuid]

    fake.nvmlDeviceGetHandleByUUID = by_uuid
    fake.nvmlDeviceGetHandleByPciBusId_v2 = lambda bus: handles[bus]
    fake.nvmlDeviceGetMemoryInfo = lambda handle: types.SimpleNamespace(used={"handle-of-nvml-1": 5 * 2**30}[handle])
    fake.nvmlDeviceGetComputeRunningProcesses = lambda handle: list(processes)
    readings = iter(energy_mj or [])
    fake.nvmlDeviceGetTotalEnergyConsumption = lambda handle: next(readings)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    props = types.SimpleNamespace(uuid="1111", pci_bus_id=0x41, pci_device_id=0, pci_domain_id=0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    return fake


@pytest.mark.parametrize("uuid_ok", [True, False])
def test_nvml_reads_the_trials_own_gpu_not_nvmls_index(monkeypatch, uuid_ok):
    """CUDA_VISIBLE_DEVICES=1: torch's cuda:0 is NVML's GPU 1. Found by UUID, or by PCI bus id without it."""
    _fake_pynvml(monkeypatch, uuid_ok=uuid_ok)
    assert nvml.handle(torch.device("cuda", 0)) == "handle-of-nvml-1"


def test_nvml_process_use_is_this_processs_own_or_na(monkeypatch):
    mine = types.SimpleNamespace(pid=4242, usedGpuMemory=3 * 2**30)
    other = types.SimpleNamespace(pid=1, usedGpuMemory=9)
    _fake_pynvml(monkeypatch, processes=[other, mine])
    handle = nvml.handle(torch.device("cuda", 0))
    assert nvml.process_bytes(handle, 4242) == 3 * 2**30
    assert nvml.process_bytes(handle, 777) is None  # not listed (another pid namespace): n/a, never 0
    device_use, process_use = memory.nvml_memory_readers(torch.device("cuda", 0))
    assert device_use() == 5 * 2**30


def _powercap(root: Path, packages: dict[int, tuple[int, int]]) -> Path:
    """A fake /sys/class/powercap: package domains {index: (energy_uj, max_energy_range_uj)} with a core
    sub-domain each (which must not be added)."""
    for index, (energy_uj, max_uj) in packages.items():
        domain = root / f"intel-rapl:{index}"
        sub = root / f"intel-rapl:{index}:0"
        for folder, name in ((domain, f"package-{index}"), (sub, "core")):
            folder.mkdir(parents=True)
            (folder / "name").write_text(name + "\n")
            (folder / "energy_uj").write_text(f"{energy_uj}\n")
            (folder / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return root


def test_rapl_sums_packages_and_survives_a_wrap_around(tmp_path):
    root = _powercap(tmp_path, {0: (1_000_000, 10_000_000), 1: (9_900_000, 10_000_000)})
    reader = energy.reader("cpu", powercap=root)
    assert reader is not None and reader.read() == 0.0
    (root / "intel-rapl:0" / "energy_uj").write_text("3000000\n")  # +2 J
    (root / "intel-rapl:1" / "energy_uj").write_text("400000\n")  # wrapped: +0.1 J to the top, +0.4 J after
    (root / "intel-rapl:0:0" / "energy_uj").write_text("999999999\n")  # a sub-domain: already in its package
    assert reader.read() == pytest.approx(2.0 + 0.500001)


def test_energy_is_na_not_zero_where_no_counter_is_readable(tmp_path):
    assert energy.reader("cpu", powercap=tmp_path) is None  # no powercap tree (this machine)
    domain = tmp_path / "intel-rapl:0"
    domain.mkdir()
    (domain / "name").write_text("package-0")
    (domain / "energy_uj").mkdir()  # unreadable as a file, like a root-only counter read by a user
    assert energy.reader("cpu", powercap=tmp_path) is None
    meter = energy.EnergyMeter(None)
    meter.stop("train", meter.start())
    assert meter.joules == {} and meter.source is None


def test_nvml_energy_per_phase_in_joules(monkeypatch):
    _fake_pynvml(monkeypatch, energy_mj=[1000, 1000, 251_000, 251_000, 261_500])
    meter = energy.EnergyMeter(energy.reader(torch.device("cuda", 0)))  # reads once to check the counter
    started = meter.start()
    meter.stop("train", started)
    meter.stop("evaluate", meter.start())
    assert meter.joules == {"train": 250.0, "evaluate": 10.5}
    assert meter.source.startswith("nvml")


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


def _speed(steps: list[tuple[int, int, int]], seconds: list[float], flops_step: float, warmup: int = 1):
    counter = CountingCollator(lambda features: features)
    counter.batches = list(steps)
    speed = ThroughputCallback(counter, warmup, "cpu", measure_flops=True)
    speed.step_seconds, speed.flops_step = list(seconds), flops_step
    return speed.result()


def test_flops_scale_with_padded_tokens_and_train_seconds_are_the_timed_steps():
    """Three steps of 4 x 32 padded tokens, of which 60, 100 and 128 are real; the first (FLOP-counted) step
    took 5 s and is left out of the timed steps."""
    result = _speed([(60, 128, 4), (100, 128, 4), (128, 128, 4)], [5.0, 1.0, 1.0], flops_step=128e6)
    assert result["train_flops"] == 3 * 128e6  # every padded token costs the same compute
    assert result["train_flops_per_s"] == 2 * 128e6 / 2.0
    assert result["train_seconds"] == 2.0 and result["train_seconds_all_steps"] == 7.0
    assert result["train_tokens_per_s"] == (100 + 128) / 2.0  # speed in real tokens


def _keep_peak(cache_dir: Path, threads: int, flops: float, under_load: bool = False) -> Path:
    path = peak_flops.cache_path(cache_dir, threads)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"identity": peak_flops._identity(), "flops_per_s": flops, "threads": threads,
                                "under_load": under_load}))
    return path


def test_a_trial_reads_the_kept_peak_and_never_times_it(tmp_path, monkeypatch):
    monkeypatch.setattr(peak_flops, "time_matmul", lambda *a: pytest.fail("a trial timed the peak"))
    assert peak_flops.peak("cpu", tmp_path)["peak_flops_per_s"] is None  # none kept: n/a, not timed under load
    _keep_peak(tmp_path, torch.get_num_threads(), 1.5e11)
    first, second = peak_flops.peak("cpu", tmp_path), peak_flops.peak("cpu", tmp_path)
    assert first == second and first["peak_flops_per_s"] == 1.5e11  # every trial: the same peak, the same source


def test_the_peak_is_timed_when_idle_enough_and_a_better_one_is_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(peak_flops, "busy_cores", lambda *a: 0.0)
    monkeypatch.setattr(peak_flops, "busy_while", lambda work: (work(), 0.0))  # idle while timed, too
    monkeypatch.setattr(peak_flops, "time_matmul", lambda *a: 2e11)
    kept = peak_flops.measure_and_keep(tmp_path, 1)
    assert kept["flops_per_s"] == 2e11 and not kept["under_load"]
    monkeypatch.setattr(peak_flops, "time_matmul", lambda *a: 1e11)  # timed lower later: the better one stays
    assert peak_flops.measure_and_keep(tmp_path, 1)["flops_per_s"] == 2e11
    assert not peak_flops.needs_timing(tmp_path, 1)


def test_a_peak_timed_under_load_is_marked_and_timed_again_when_idle(tmp_path, monkeypatch):
    monkeypatch.setattr(peak_flops, "busy_cores", lambda *a: 64.0)
    monkeypatch.setattr(peak_flops, "time_matmul", lambda *a: 1e10)
    started = time.monotonic()
    kept = peak_flops.measure_and_keep(tmp_path, 1, wait_s=0.2)
    assert kept["under_load"] and time.monotonic() - started < 5
    monkeypatch.setattr(peak_flops.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert peak_flops.needs_timing(tmp_path, 1)
    monkeypatch.setattr(peak_flops.os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    assert not peak_flops.needs_timing(tmp_path, 1)  # still busy: the kept one stands; trials never re-time it


class _Logits:
    def __init__(self, logits):
        self.logits = logits


class _Mergeable(nn.Module):
    """Unmerged outputs 10.0; merged outputs 10.0 + shift (rounding of folded weights, in some precision)."""

    def __init__(self, shift: float, fail: bool = False):
        super().__init__()
        self.shift, self.fail = shift, fail

    def forward(self, x):
        return _Logits(torch.full((2, 3), 10.0))

    def merge_and_unload(self):
        if self.fail:
            raise ValueError("cannot merge on this device")
        shifted = _Mergeable(self.shift)
        shifted.forward = lambda x: _Logits(torch.full((2, 3), 10.0 + self.shift))
        return shifted


def test_merge_tolerance_follows_the_compute_precision_and_never_fails_the_trial():
    from contextlib import nullcontext

    batch = {"x": torch.zeros(1)}
    bf16_rounding = 0.3  # 3% of the largest logit: several bf16 epsilons, far beyond float32's
    _, fp32 = merge.merge_checked(_Mergeable(bf16_rounding), batch, torch.float32, nullcontext)
    _, bf16 = merge.merge_checked(_Mergeable(bf16_rounding), batch, torch.bfloat16, nullcontext)
    assert fp32["merge_ok"] is False and fp32["merge_max_abs_diff"] == pytest.approx(0.3)
    assert bf16["merge_ok"] is True
    model = _Mergeable(0.0, fail=True)
    kept, failed = merge.merge_checked(model, batch, torch.float32, nullcontext)
    assert kept is model and failed["merge_ok"] is None and "cannot merge" in failed["merge_error"]
