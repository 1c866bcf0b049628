"""Loading adapters onto the resident base: seconds per adapter, and the memory K resident adapters add.

Memory is measured, not counted: the process RSS on CPU, the CUDA allocator on GPU, read before the first adapter,
after the first and after the K-th. Freed memory that the C allocator keeps (activations of earlier forward passes)
would be reused by new adapter tensors without the RSS growing, so it is handed back (malloc_trim) before every
reading; the kernel's high-water mark (VmHWM, reset before loading) gives the peak while loading. The bytes counted
from the adapters' tensors are recorded beside, as a cross-check, not as the figure.
"""

from __future__ import annotations

import functools
import gc
import statistics
import time

import psutil
import torch

from bench.trackers import memory
from bench.trackers.memory import high_water_mark_bytes, reset_high_water_mark


def synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def fast_malloc(device) -> str:
    """Serve under glibc's fast malloc policy, and say which policy the timings ran under. The base loads through
    the training trial's path, which sets the exact policy for its memory window; under it every freed activation
    goes back to the kernel and returns as fresh zeroed pages (a training step ran 40% slower). The memory
    readings here need no exact policy: `resident_bytes` trims the heap before each one."""
    if torch.device(device).type != "cpu":
        return "n/a: the CUDA caching allocator"
    return memory.FAST if memory.keep_freed_memory() else "n/a: the C library is not glibc"


def resident_bytes(device) -> int:
    """Memory in use now, after garbage and freed allocator pages are gone: RSS on CPU, allocated bytes on GPU."""
    gc.collect()
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.memory_allocated(device)
    memory.trim_freed_memory()
    return psutil.Process().memory_info().rss


def memory_source(device) -> str:
    return "cuda_allocator" if torch.device(device).type == "cuda" else "process_rss"


def timed(action, device) -> float:
    """Seconds `action()` took, the device's queued work included."""
    synchronize(device)
    started = time.perf_counter()
    action()
    synchronize(device)
    return time.perf_counter() - started


def load_all(host, paths: list, names: list[str], device) -> dict:
    """Load the K adapters one by one onto the host's base; time each, and measure the memory they add."""
    before = resident_bytes(device)
    on_gpu = torch.device(device).type == "cuda"
    if on_gpu:
        torch.cuda.reset_peak_memory_stats(device)
    hwm_ok = not on_gpu and reset_high_water_mark()
    seconds, after_first = [], None
    for name, path in zip(names, paths):
        seconds.append(timed(functools.partial(host.load, name, path), device))
        if after_first is None:
            after_first = resident_bytes(device)
    peak = torch.cuda.max_memory_allocated(device) if on_gpu else high_water_mark_bytes() if hwm_ok else None
    after = resident_bytes(device)
    k = len(names)
    added = after - before
    return {
        "load_s_p50": statistics.median(seconds),
        "load_first_s": seconds[0],  # peft: the first adapter also wraps the base (layers injected)
        "load_s_max": max(seconds),
        "mem_adapters_bytes": added,
        "mem_per_adapter_bytes": added / k,
        "mem_per_extra_adapter_bytes": (after - after_first) / (k - 1) if k > 1 else None,
        "mem_load_peak_bytes": peak - before if peak is not None else None,
        "mem_source": memory_source(device),
        "adapter_tensor_bytes": statistics.median(host.adapter_tensor_bytes(n) for n in names),
    }
