"""Inference latency: forward passes over one fixed-size batch, after warm-up, as percentiles."""

from __future__ import annotations

import statistics
import time

import torch


@torch.inference_mode()
def measure(model, batch: dict, repeats: int, warmup: int, device) -> dict:
    model.eval()
    device = torch.device(device)
    timings_ms = []
    for index in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        model(**batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if index >= warmup:
            timings_ms.append((time.perf_counter() - started) * 1000)
    deciles = statistics.quantiles(timings_ms, n=10, method="inclusive")
    return {"latency_ms_p50": statistics.median(timings_ms), "latency_ms_p90": deciles[8]}
