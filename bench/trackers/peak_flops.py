"""The machine's peak FLOP/s, the denominator of model FLOPs utilisation (mfu).

GPU: the data sheet's dense figure for the device and the precision training runs in (fp32, tf32, bf16, fp16);
n/a for a device or precision the table does not hold.
CPU: no spec sheet fits every CPU, so square matmuls in the trial's dtype are timed (the best over sizes up to
4096, best of several each) once per machine, thread count and dtype, before any trial, when the machine is idle
(other processes use under IDLE_CORES, before and while it is timed), and kept: a trial only reads it. A distributed
trial's ranks each compute with their share of the cores, so the peak at that thread count is timed for them. A peak
timed while another trial runs reads low and inflates mfu (above 1, even), so trials never time it themselves; one
timed under load (the machine never became idle) is marked so, its mfu is n/a, and the next sweep that starts on an
idle machine times it again. Every trial on a machine thus divides by the same peak, the one the report uses.

    python -m bench.trackers.peak_flops [THREADS] [fp32|bf16|fp16]    # time and keep this machine's peak now
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import psutil
import torch

from bench.common.files import write_atomic

# Dense (no sparsity) peaks in TFLOP/s by precision, from the vendors' data sheets: NVIDIA H100 and H200 product
# briefs and data sheets (SXM, PCIe, NVL), A100 data sheet, L40S, L40, L4, A10, V100 and T4 data sheets, the Ada
# (RTX 4090) and Ampere GA102 (RTX 3090) architecture white papers. bf16/fp16 are the tensor-core rates with fp32
# accumulation (what mixed precision uses); tf32 the tensor-core rate for fp32 matmuls with TF32 allowed; fp32 the
# CUDA-core rate. Where a data sheet gives only the sparse figure, the dense one is half of it. A precision a device
# lacks (bf16 and tf32 before Ampere) is absent: its mfu is n/a. The A10G (AWS) has no NVIDIA data sheet: n/a.
GPU_PEAK_TFLOPS = {
    ("H200",): {"fp32": 67, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5},  # SXM
    ("H200", "NVL"): {"fp32": 60, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5},
    ("H100",): {"fp32": 67, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5},  # SXM ("H100 80GB HBM3")
    ("H100", "PCIe"): {"fp32": 51, "tf32": 378, "bf16": 756.5, "fp16": 756.5},
    ("H100", "NVL"): {"fp32": 60, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5},
    ("A100",): {"fp32": 19.5, "tf32": 156, "bf16": 312, "fp16": 312},
    ("L40S",): {"fp32": 91.6, "tf32": 183, "bf16": 362, "fp16": 362},
    ("L40",): {"fp32": 90.5, "tf32": 90.5, "bf16": 181, "fp16": 181},
    ("L4",): {"fp32": 30.3, "tf32": 60, "bf16": 121, "fp16": 121},
    ("A10",): {"fp32": 31.2, "tf32": 62.5, "bf16": 125, "fp16": 125},
    ("RTX", "4090"): {"fp32": 82.6, "tf32": 82.6, "bf16": 165.2, "fp16": 165.2},
    ("RTX", "3090"): {"fp32": 35.6, "tf32": 35.6, "bf16": 71, "fp16": 71},
    ("V100",): {"fp32": 15.7, "fp16": 125},  # SXM2
    ("V100", "PCIe"): {"fp32": 14, "fp16": 112},
    ("V100S",): {"fp32": 16.4, "fp16": 130},
    ("T4",): {"fp32": 8.1, "fp16": 65},
}
MATMUL_SIZES = (512, 1024, 2048, 4096)
REPEATS = 7  # best of up to 7: a stray interruption spoils one timing, not the peak
TIMING_BUDGET_S = 1.0  # per size: fewer repeats of the large products
MAX_PRODUCT_S = 1.0
METHOD = "sizes-to-4096-idle-v2"
IDLE_WAIT_S = 30.0  # how long to wait for the machine to become idle before timing under load (marked so)
IDLE_SAMPLE_S = 0.5
IDLE_CORES = 0.25  # other processes' use, in cores, under which the machine counts as idle
IDLE_LOAD = 0.5  # load average under which a peak timed under load is worth timing again


# Words of a CUDA device name that do not change its compute: brand, memory size and kind, form factor (where the
# form factor does, H100 and V100 PCIe, the table has an entry with the word in it).
_NAME_NOISE = re.compile(r"nvidia|tesla|geforce|\d+gb|hbm\w*|sxm\d*|pcie")


def _name_words(device_name: str) -> set[str]:
    """The words of a CUDA device name, lower case ("NVIDIA A100-SXM4-80GB" -> {"nvidia", "a100", "sxm4", "80gb"})."""
    return set(re.split(r"[\s\-_/]+", device_name.lower())) - {""}


def gpu_entry(device_name: str) -> tuple[str, ...] | None:
    """The table's entry for a device, matched by whole words: every word of the entry is in the name and the name
    has no other word but noise, so "L40" is not "L4" and an "RTX 3090 Ti" is not an "RTX 3090"; the entry with most
    words wins ("H100 PCIe" over "H100"). None for a device not in the table."""
    words = _name_words(device_name)
    matches = [key for key in GPU_PEAK_TFLOPS
               if {w.lower() for w in key} <= words
               and all(_NAME_NOISE.fullmatch(w) for w in words - {w.lower() for w in key})]
    return max(matches, key=len) if matches else None


def gpu_peak(device_name: str, precision: str) -> float | None:
    """Dense peak FLOP/s of a device in a precision (fp32, tf32, bf16, fp16); None where the table has none."""
    entry = gpu_entry(device_name)
    tflops = GPU_PEAK_TFLOPS[entry].get(precision) if entry else None
    return tflops * 1e12 if tflops else None


def gpu_matmul_precision(precision: str) -> str:
    """The precision fp32 matmuls actually run in: tf32 where torch allows TF32 tensor cores for them."""
    import torch

    if precision == "fp32" and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return precision


def _machine() -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in platform.node() or "host")


CPU_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_dtype(precision: str) -> str:
    """The dtype a CPU trial's matmuls run in: its precision (auto is fp32 on CPU)."""
    return precision if precision in CPU_DTYPES else "fp32"


def cache_path(cache_dir: Path, threads: int, dtype: str = "fp32") -> Path:
    return Path(cache_dir) / "peak_flops" / f"cpu-{_machine()}-{platform.machine()}-{threads}t-{dtype}.json"


def _identity() -> str:
    # METHOD: a peak kept by an earlier way of timing it (one size, idle meaning "enough free cores") is timed again
    machine = f"{platform.node()}|{platform.processor() or platform.machine()}|{os.cpu_count()}"
    return f"{machine}|{torch.__version__}|{METHOD}"


def cached(cache_dir: Path, threads: int, dtype: str = "fp32") -> dict | None:
    """The kept measurement for this machine, thread count and dtype, or None."""
    try:
        kept = json.loads(cache_path(cache_dir, threads, dtype).read_text())
    except (OSError, ValueError):
        return None
    return kept if isinstance(kept, dict) and kept.get("identity") == _identity() and kept.get("flops_per_s") else None


def needs_timing(cache_dir: Path, threads: int, dtype: str = "fp32") -> bool:
    """True when no peak is kept, or the kept one was timed under load and the machine looks idle now (load average:
    instant to read, unlike a CPU-percent sample)."""
    kept = cached(cache_dir, threads, dtype)
    if kept is None:
        return True
    return bool(kept.get("under_load")) and os.getloadavg()[0] <= IDLE_LOAD


def _busy_seconds(times) -> float:
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def busy_while(work) -> tuple:
    """(work's result, cores other processes used while it ran): the machine's busy CPU time less this process's."""
    me = psutil.Process()
    machine, mine, started = psutil.cpu_times(), me.cpu_times(), time.monotonic()
    result = work()
    time.sleep(max(0.0, IDLE_SAMPLE_S - (time.monotonic() - started)))  # CPU times tick at 10 ms: sample long enough
    machine_after, mine_after, wall = psutil.cpu_times(), me.cpu_times(), time.monotonic() - started
    own = mine_after.user + mine_after.system - mine.user - mine.system
    others = _busy_seconds(machine_after) - _busy_seconds(machine) - own
    return result, max(others, 0.0) / wall if wall > 0 else 0.0


def busy_cores(sample_s: float = IDLE_SAMPLE_S) -> float:
    """Cores other processes use over a short sample."""
    return busy_while(lambda: time.sleep(sample_s))[1]


def wait_until_idle(wait_s: float = IDLE_WAIT_S) -> float:
    """Wait (up to wait_s) until other processes use less than IDLE_CORES; the busy cores seen last. Enough free
    cores is not idle: a trial beside the timing shares the memory bandwidth, caches and clock boost."""
    deadline = time.monotonic() + wait_s
    while True:
        busy = busy_cores()
        if busy <= IDLE_CORES or time.monotonic() >= deadline:
            return busy


def time_matmul(dtype: torch.dtype = torch.float32) -> float:
    """Matmul FLOP/s at the current torch thread count, the best over square sizes up to the largest in
    MATMUL_SIZES (BLAS reaches its peak only on large ones: one 1024^3 read low on many CPUs), each the best of up to
    REPEATS within TIMING_BUDGET_S; a size whose one product takes over MAX_PRODUCT_S ends the climb (the next one
    would take 8x as long: bf16 without native support)."""
    best = 0.0
    for size in MATMUL_SIZES:
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        a @ b  # warm-up: thread pool start, kernel selection
        first = _timed(a, b)
        repeats = max(1, min(REPEATS - 1, int(TIMING_BUDGET_S / first)))
        seconds = min([first] + [_timed(a, b) for _ in range(repeats)])
        best = max(best, 2 * size**3 / seconds)
        if first > MAX_PRODUCT_S:
            break
    return best


def _timed(a, b) -> float:
    started = time.perf_counter()
    a @ b
    return time.perf_counter() - started


def measure_and_keep(cache_dir: Path, threads: int, wait_s: float = IDLE_WAIT_S, dtype: str = "fp32") -> dict:
    """Time the peak once the machine is idle (or under load, marked so, after wait_s, or when another process
    became busy while it was timed) and keep the best."""
    torch.set_num_threads(threads)
    busy = wait_until_idle(wait_s)
    measured, busy_during = busy_while(lambda: time_matmul(CPU_DTYPES[dtype]))
    under_load = max(busy, busy_during) > IDLE_CORES
    kept = cached(cache_dir, threads, dtype)
    if kept is not None and kept["flops_per_s"] >= measured:
        kept = {**kept, "under_load": kept.get("under_load", False) and under_load}
    else:
        kept = {"identity": _identity(), "flops_per_s": measured, "threads": threads, "dtype": dtype,
                "under_load": under_load, "busy_cores_before": round(busy, 2),
                "busy_cores_during": round(busy_during, 2)}
    write_atomic(cache_path(cache_dir, threads, dtype), kept)
    return kept


def source(threads: int, dtype: str = "fp32") -> str:
    """The same string for every trial on this machine, thread count and dtype: the report groups peaks by it."""
    return f"measured {dtype} matmul up to {MATMUL_SIZES[-1]}^3, {threads} threads, {platform.node()}"


def peak(device: torch.device, cache_dir: Path, precision: str = "fp32") -> dict:
    """peak_flops_per_s, peak_flops_source and peak_flops_under_load; never timed here (n/a where none was kept)."""
    device = torch.device(device)
    if device.type == "cuda":
        name, matmul = torch.cuda.get_device_name(device), gpu_matmul_precision(precision)
        flops = gpu_peak(name, matmul)
        where = f"data sheet {matmul} dense ({name})" if flops else f"no {matmul} peak known for {name}"
        return {"peak_flops_per_s": flops, "peak_flops_source": where, "peak_flops_under_load": None}
    threads, dtype = torch.get_num_threads(), cpu_dtype(precision)
    kept = cached(cache_dir, threads, dtype) or {}
    missing = f"not measured: python -m bench.trackers.peak_flops {threads} {dtype}"
    return {"peak_flops_per_s": kept.get("flops_per_s"),
            "peak_flops_source": source(threads, dtype) if kept else missing,
            "peak_flops_under_load": kept.get("under_load")}


if __name__ == "__main__":
    wanted = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
    wanted_dtype = sys.argv[2] if len(sys.argv) > 2 else "fp32"
    where = Path(os.environ.get("PEFT_BENCH_CACHE", "~/.cache/peft-bench")).expanduser()
    print(json.dumps(measure_and_keep(where, wanted, dtype=wanted_dtype), indent=2))
