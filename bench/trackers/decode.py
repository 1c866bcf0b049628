"""Generation latency: time to first token and per-token decode time over a fixed number of new tokens.

One forward pass over a batch (latency_ms_p50) is what a classifier pays per request; a generator pays a prefill
and then one step per new token, and methods differ in the steps: a prefix or a soft prompt lengthens what every
step attends to, unmerged LoRA adds its small matmuls to every step, where the step itself is memory-bound.
Each repeat decodes DECODE_NEW_TOKENS greedy tokens for one prompt (a single request), never stopping at the
end-of-sequence token, so every repeat does the same work: TTFT is prompt in to first token out (the prefill and
its argmax); the per-token decode time is the time from the first token to the last over the tokens between them.
Unmerged and merged are timed in one loop, their repeats interleaved, and repeats stop once every median is known
to within the latency tracker's width (bench.trackers.latency), as forward-pass latency does.
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from bench.trackers.latency import percentiles, tight

DECODE_NEW_TOKENS = 8  # new tokens per timed repeat: the first (TTFT) and 7 decode steps
DECODE_MAX_REPEATS = 10  # a ceiling below latency's: on smollm2 under load 20 repeats of two models took ~40 s


def _timed(decode: Callable, model, batch: dict, new_tokens: int, device) -> tuple[float, float]:
    """(ttft_ms, decode_ms_per_token) of one greedy decode of `new_tokens` tokens."""
    marks: list[float] = []

    def on_token(_step: int) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        marks.append(time.perf_counter())

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    decode(model, batch, new_tokens, on_token)
    per_token = (marks[-1] - marks[0]) / (len(marks) - 1) if len(marks) > 1 else None
    return (marks[0] - started) * 1000, per_token * 1000 if per_token is not None else None


@torch.inference_mode()
def measure_interleaved(decode: Callable, models: dict[str, object], batch: dict, repeats: int, warmup: int, device,
                        new_tokens: int = DECODE_NEW_TOKENS) -> dict:
    """{suffix: model} -> `ttft_ms_p50<suffix>`, `decode_ms_per_token_p50<suffix>` for each, `decode_repeats_run`
    (at most DECODE_MAX_REPEATS) and `decode_new_tokens`. decode(model, batch, new_tokens, on_token): greedy
    decoding that calls on_token(i) once the i-th new token is known (bench.tasks.generation.timing_decoder)."""
    device = torch.device(device)
    for model in models.values():
        model.eval()
    order = list(models)
    ttft: dict[str, list[float]] = {suffix: [] for suffix in order}
    step: dict[str, list[float]] = {suffix: [] for suffix in order}
    for index in range(warmup + max(min(repeats, DECODE_MAX_REPEATS), 1)):
        for suffix in order if index % 2 == 0 else order[::-1]:  # neither always runs first
            first, per_token = _timed(decode, models[suffix], batch, new_tokens, device)
            if index >= warmup:
                ttft[suffix].append(first)
                if per_token is not None:
                    step[suffix].append(per_token)
        if index >= warmup and all(tight(ttft[s]) and tight(step[s]) for s in order):
            break
    figures: dict = {"decode_repeats_run": len(ttft[order[0]]), "decode_new_tokens": new_tokens}
    for suffix in order:
        figures[f"ttft_ms_p50{suffix}"] = percentiles(ttft[suffix])[0]
        figures[f"decode_ms_per_token_p50{suffix}"] = percentiles(step[suffix])[0] if step[suffix] else None
    return figures
