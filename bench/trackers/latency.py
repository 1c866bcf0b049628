"""Inference latency: forward passes over one fixed-size batch, after warm-up, as percentiles.

Several models (the method unmerged and merged) are timed in the same loop, one pass of each per repeat and in
alternating order, so a burst of load from another process or a drift of the clock falls on all of them alike.
Repeats stop as soon as every model's median is known to within LATENCY_REL_WIDTH (a distribution-free 95%
interval of the median), at LATENCY_MIN_REPEATS at the earliest and `repeats` at the latest: a quiet machine needs
few, a noisy one gets all it is allowed.
"""

from __future__ import annotations

import math
import statistics
import time

import torch

LATENCY_MIN_REPEATS = 6  # the fewest timings whose extremes bracket the median with >= 95% (1 - 2 / 2**6 = 0.969)
LATENCY_REL_WIDTH = 0.05  # stop once the median's 95% interval spans at most 5% of the median
CONFIDENCE = 0.95


def percentiles(values: list[float]) -> tuple[float, float]:
    """(p50, p90) of the values, the p90 interpolated between order statistics; a single value is both (so one
    timed repeat is a figure, not a failure)."""
    if not values:
        raise ValueError("percentiles of no values")
    if len(values) == 1:
        return values[0], values[0]
    return statistics.median(values), statistics.quantiles(values, n=10, method="inclusive")[8]


def median_interval(values: list[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Distribution-free interval of the median: order statistics k and n+1-k, with k the largest rank such that
    P(Binomial(n, 1/2) < k) <= (1 - confidence) / 2. None where n is too small for any such interval."""
    n, tail = len(values), (1 - confidence) / 2
    below, k = 0.0, 0
    while k < n // 2:
        below += math.comb(n, k) / 2**n  # P(Binomial(n, 1/2) <= k): k+1 would then be a valid rank
        if below > tail:
            break
        k += 1
    if k == 0:
        return None
    ordered = sorted(values)
    return ordered[k - 1], ordered[n - k]


def tight(values: list[float], rel_width: float = LATENCY_REL_WIDTH) -> bool:
    """The median's interval spans at most rel_width of the median."""
    interval = median_interval(values) if len(values) >= LATENCY_MIN_REPEATS else None
    return interval is not None and interval[1] - interval[0] <= rel_width * statistics.median(values)


def _timed_ms(model, batch: dict, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    model(**batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - started) * 1000


@torch.inference_mode()
def measure_interleaved(models: dict[str, object], batch: dict, repeats: int, warmup: int, device) -> dict:
    """{suffix: model} -> `latency_ms_p50<suffix>`, `latency_ms_p90<suffix>` for each, and `latency_repeats_run`:
    the timed passes each model got (the same for all)."""
    device = torch.device(device)
    for model in models.values():
        model.eval()
    order = list(models)
    timings: dict[str, list[float]] = {suffix: [] for suffix in order}
    for index in range(warmup + repeats):
        for suffix in order if index % 2 == 0 else order[::-1]:  # neither always runs first
            elapsed = _timed_ms(models[suffix], batch, device)
            if index >= warmup:
                timings[suffix].append(elapsed)
        if index >= warmup and all(tight(values) for values in timings.values()):
            break
    figures: dict = {"latency_repeats_run": len(timings[order[0]])}
    for suffix, values in timings.items():
        figures[f"latency_ms_p50{suffix}"], figures[f"latency_ms_p90{suffix}"] = percentiles(values)
    return figures


def measure(model, batch: dict, repeats: int, warmup: int, device) -> dict:
    """One model: `latency_ms_p50`, `latency_ms_p90`, `latency_repeats_run`."""
    return measure_interleaved({"": model}, batch, repeats, warmup, device)
