"""Peak memory of the training phase, and where it goes.

GPU: the CUDA caching allocator's peak (torch.cuda.max_memory_allocated) and NVML's device memory in use.
CPU: process RSS sampled by a background thread (psutil), with the baseline before training recorded.
Breakdown: weights, gradients and optimizer state counted from tensors; activations = the rest of the peak.
"""

from __future__ import annotations

import threading

import psutil
import torch

SAMPLE_INTERVAL_S = 0.01  # a 10 ms sleep between reads: ~0.1% of a core, never a busy loop


def tensor_bytes(tensors) -> int:
    seen, total = set(), 0
    for tensor in tensors:
        if isinstance(tensor, torch.Tensor) and tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            total += tensor.numel() * tensor.element_size()
    return total


def breakdown(model, optimizer) -> dict:
    """Bytes held by weights, gradients (of trainable parameters) and optimizer state, counted from tensors."""
    parameters = list(model.parameters())
    state = optimizer.state.values() if optimizer is not None else []
    return {
        "mem_weights_bytes": tensor_bytes(parameters) + tensor_bytes(model.buffers()),
        "mem_grads_bytes": tensor_bytes(p for p in parameters if p.requires_grad),  # grads match their parameters
        "mem_optimizer_bytes": tensor_bytes(v for s in state for v in s.values()),
    }


class _Sampler(threading.Thread):
    def __init__(self, read):
        super().__init__(daemon=True)
        self.read, self.peak, self.stop_event = read, read(), threading.Event()

    def run(self):
        while not self.stop_event.wait(SAMPLE_INTERVAL_S):
            self.peak = max(self.peak, self.read())

    def stop(self) -> int:
        self.stop_event.set()
        self.join()
        return max(self.peak, self.read())


class MemoryTracker:
    """`with MemoryTracker(device) as mem: train()`; then mem.result() with the model and optimizer."""

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.peak_bytes = self.baseline_bytes = self.nvml_peak_bytes = None

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline_bytes = torch.cuda.memory_allocated(self.device)
            self._nvml = _nvml_reader(self.device)
            self._sampler = _Sampler(self._nvml) if self._nvml else None
        else:
            process = psutil.Process()
            self.baseline_bytes = process.memory_info().rss
            self._sampler = _Sampler(lambda: process.memory_info().rss)
        if self._sampler:
            self._sampler.start()
        return self

    def __exit__(self, *exc):
        sampled = self._sampler.stop() if self._sampler else None
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
            self.nvml_peak_bytes = sampled
        else:
            self.peak_bytes = sampled
        return False

    @property
    def source(self) -> str:
        return "cuda_allocator" if self.device.type == "cuda" else "process_rss"

    def result(self, model, optimizer) -> dict:
        """Peak and breakdown; on CPU the baseline (weights + runtime) is taken off before the rest is split."""
        parts = breakdown(model, optimizer)
        if self.device.type == "cuda":
            accounted = parts["mem_weights_bytes"] + parts["mem_grads_bytes"] + parts["mem_optimizer_bytes"]
        else:  # RSS also holds the Python runtime, libraries and data: the baseline before training carries those
            accounted = self.baseline_bytes + parts["mem_grads_bytes"] + parts["mem_optimizer_bytes"]
        return {
            "peak_mem_bytes": self.peak_bytes,
            "mem_source": self.source,
            "mem_baseline_bytes": self.baseline_bytes,
            "peak_mem_nvml_bytes": self.nvml_peak_bytes,
            **parts,
            "mem_activations_bytes": max(self.peak_bytes - accounted, 0),
        }


def _nvml_reader(device: torch.device):
    """Device memory in use as NVML sees it (all processes), or None where NVML is unavailable."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
        return lambda: pynvml.nvmlDeviceGetMemoryInfo(handle).used
    except Exception:  # no driver, no NVML library: the allocator figure still stands
        return None
