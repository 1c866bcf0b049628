"""The machine's peak FLOP/s, the denominator of model FLOPs utilisation (mfu).

GPU: the spec sheet's dense bf16/fp16 tensor-core figure for known devices.
CPU: no spec sheet fits every CPU, so a square float32 matmul is timed once (best of several) and cached.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch

# Dense (no sparsity) tensor-core peaks, FLOP/s, from the vendors' data sheets.
GPU_PEAK_BF16 = {
    "H200": 989e12, "H100 SXM": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12,
    "L4": 121e12, "A10G": 70e12, "A10": 125e12, "RTX 4090": 165e12, "RTX 3090": 71e12, "V100": 125e12, "T4": 65e12,
}
MATMUL_SIZE = 1024


def gpu_peak(device_name: str) -> float | None:
    for key in sorted(GPU_PEAK_BF16, key=len, reverse=True):  # "H100 PCIe" before "H100"
        if key in device_name:
            return GPU_PEAK_BF16[key]
    return None


def cpu_peak(cache_dir: Path, repeats: int = 3) -> float:
    """float32 matmul FLOP/s at the current torch thread count: the best ever measured on this CPU model and thread
    count. Timed again by every trial (~0.2 s) and the cache keeps the maximum, because one probe that ran while
    the machine was busy reads low, and a low peak would inflate every later trial's mfu."""
    threads = torch.get_num_threads()
    path = cache_dir / "peak_flops" / f"cpu-{platform.machine()}-{threads}t.json"
    identity = f"{platform.processor()}|{torch.__version__}"
    try:
        cached = json.loads(path.read_text())
        best_cached = cached["flops_per_s"] if cached["identity"] == identity else 0.0
    except (OSError, ValueError, KeyError):
        best_cached = 0.0
    a, b = torch.randn(MATMUL_SIZE, MATMUL_SIZE), torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    a @ b  # warm-up: thread pool start, kernel selection
    measured = 2 * MATMUL_SIZE**3 / min(_timed(a, b) for _ in range(repeats))
    if measured > best_cached:
        from bench.results.record import write_atomic

        write_atomic(path, {"identity": identity, "flops_per_s": measured})
    return max(measured, best_cached)


def _timed(a, b) -> float:
    started = time.perf_counter()
    for _ in range(4):
        a @ b
    return (time.perf_counter() - started) / 4


def peak(device: torch.device, cache_dir: Path) -> tuple[float | None, str]:
    """(peak FLOP/s, where it came from)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return gpu_peak(name), f"spec sheet bf16 dense ({name})"
    return cpu_peak(cache_dir), f"measured fp32 matmul {MATMUL_SIZE}^3, {torch.get_num_threads()} threads"
