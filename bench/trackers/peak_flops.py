"""The machine's peak FLOP/s, the denominator of model FLOPs utilisation (mfu).

GPU: the spec sheet's dense bf16/fp16 tensor-core figure for known devices.
CPU: no spec sheet fits every CPU, so a square float32 matmul is timed (best of several) once per machine and thread
count, before any trial, when the machine is idle enough, and kept: a trial only reads it. A peak timed while
another trial runs reads low and inflates mfu (above 1, even), so trials never time it themselves; one timed under
load (the machine never became idle) is marked so and timed again by the next sweep that starts on an idle machine.
Every trial on a machine thus divides by the same peak, the one the report uses.

    python -m bench.trackers.peak_flops [THREADS]    # time and keep this machine's peak now
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import psutil
import torch

# Dense (no sparsity) tensor-core peaks, FLOP/s, from the vendors' data sheets.
GPU_PEAK_BF16 = {
    "H200": 989e12, "H100 SXM": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12,
    "L4": 121e12, "A10G": 70e12, "A10": 125e12, "RTX 4090": 165e12, "RTX 3090": 71e12, "V100": 125e12, "T4": 65e12,
}
MATMUL_SIZE = 1024
REPEATS = 7  # best of 7: a stray interruption spoils one timing, not the peak
IDLE_WAIT_S = 30.0  # how long to wait for the machine to become idle before timing under load (marked so)
IDLE_SAMPLE_S = 0.5


def gpu_peak(device_name: str) -> float | None:
    for key in sorted(GPU_PEAK_BF16, key=len, reverse=True):  # "H100 PCIe" before "H100"
        if key in device_name:
            return GPU_PEAK_BF16[key]
    return None


def _machine() -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in platform.node() or "host")


def cache_path(cache_dir: Path, threads: int) -> Path:
    return Path(cache_dir) / "peak_flops" / f"cpu-{_machine()}-{platform.machine()}-{threads}t.json"


def _identity() -> str:
    return f"{platform.node()}|{platform.processor() or platform.machine()}|{os.cpu_count()}|{torch.__version__}"


def cached(cache_dir: Path, threads: int) -> dict | None:
    """The kept measurement for this machine and thread count, or None."""
    try:
        kept = json.loads(cache_path(cache_dir, threads).read_text())
    except (OSError, ValueError):
        return None
    return kept if isinstance(kept, dict) and kept.get("identity") == _identity() and kept.get("flops_per_s") else None


def needs_timing(cache_dir: Path, threads: int) -> bool:
    """True when no peak is kept, or the kept one was timed under load and the machine looks idle now (load average:
    instant to read, unlike a CPU-percent sample)."""
    kept = cached(cache_dir, threads)
    if kept is None:
        return True
    return bool(kept.get("under_load")) and os.getloadavg()[0] + threads <= (os.cpu_count() or 1)


def busy_cores(sample_s: float = IDLE_SAMPLE_S) -> float:
    """Cores in use by the whole machine over a short sample."""
    return psutil.cpu_percent(interval=sample_s) / 100 * (os.cpu_count() or 1)


def wait_until_idle(threads: int, wait_s: float = IDLE_WAIT_S) -> float:
    """Wait (up to wait_s) until `threads` cores are free; the busy cores seen last."""
    deadline = time.monotonic() + wait_s
    while True:
        busy = busy_cores()
        if busy + threads <= (os.cpu_count() or 1) + 0.25 or time.monotonic() >= deadline:
            return busy


def time_matmul(repeats: int = REPEATS) -> float:
    """float32 matmul FLOP/s at the current torch thread count, best of `repeats`."""
    a, b = torch.randn(MATMUL_SIZE, MATMUL_SIZE), torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    a @ b  # warm-up: thread pool start, kernel selection
    return 2 * MATMUL_SIZE**3 / min(_timed(a, b) for _ in range(repeats))


def _timed(a, b) -> float:
    started = time.perf_counter()
    for _ in range(4):
        a @ b
    return (time.perf_counter() - started) / 4


def measure_and_keep(cache_dir: Path, threads: int, wait_s: float = IDLE_WAIT_S) -> dict:
    """Time the peak once the machine is idle enough (or under load, marked so, after wait_s) and keep the best."""
    from bench.results.record import write_atomic

    torch.set_num_threads(threads)
    busy = wait_until_idle(threads, wait_s)
    measured = time_matmul()
    under_load = busy + threads > (os.cpu_count() or 1) + 0.25
    kept = cached(cache_dir, threads)
    if kept is not None and kept["flops_per_s"] >= measured:
        kept = {**kept, "under_load": kept.get("under_load", False) and under_load}
    else:
        kept = {"identity": _identity(), "flops_per_s": measured, "threads": threads, "under_load": under_load,
                "busy_cores_before": round(busy, 2)}
    write_atomic(cache_path(cache_dir, threads), kept)
    return kept


def source(threads: int) -> str:
    """The same string for every trial on this machine and thread count: the report groups peaks by it."""
    return f"measured fp32 matmul {MATMUL_SIZE}^3, {threads} threads, {platform.node()}"


def peak(device: torch.device, cache_dir: Path) -> dict:
    """peak_flops_per_s, peak_flops_source and peak_flops_under_load; never timed here (n/a where none was kept)."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return {"peak_flops_per_s": gpu_peak(name), "peak_flops_source": f"spec sheet bf16 dense ({name})",
                "peak_flops_under_load": None}
    threads = torch.get_num_threads()
    kept = cached(cache_dir, threads) or {}
    missing = f"not measured: python -m bench.trackers.peak_flops {threads}"
    return {"peak_flops_per_s": kept.get("flops_per_s"), "peak_flops_source": source(threads) if kept else missing,
            "peak_flops_under_load": kept.get("under_load")}


if __name__ == "__main__":
    wanted = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
    where = Path(os.environ.get("PEFT_BENCH_CACHE", "~/.cache/peft-bench")).expanduser()
    print(json.dumps(measure_and_keep(where, wanted), indent=2))
