"""Communication share of a training step: torch.profiler over one warm-up step of each rank (left out of the speed
figures, so its overhead costs them nothing), the time collectives took divided by the step's wall time.

A collective is any profiled event whose name says so: c10d, gloo, nccl, all_reduce, all_gather (FSDP's all-gather
spans, their copy-in and copy-out included), reduce_scatter, broadcast, and waits on them. Nested and concurrent
events are merged into one set of intervals, so time is never counted twice. On GPU the NCCL kernels' device time
counts; on CPU the collectives' time on any thread (gloo runs them on threads of its own while the main thread may
go on computing, so the share is the time communication was under way, an upper bound on what the step waited
for). n/a where no warm-up step is free: the first step is the FLOP-counted one, so train.warmup_steps must be 2
or more.
"""

from __future__ import annotations

import os
import re
import time
from contextlib import contextmanager

from transformers import TrainerCallback

COLLECTIVE = re.compile(r"c10d|gloo|nccl|all_?reduce|all_?gather|reduce_?scatter|broadcast|all_to_all|wait_tensor",
                        re.IGNORECASE)


def profiled_step(warmup_steps: int, measure_flops: bool) -> int | None:
    """The warm-up step to profile: the last one left out of the speed figures that is not the FLOP-counted one."""
    step = warmup_steps - 1
    return step if step >= (1 if measure_flops else 0) else None


def busy_seconds(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of (start, end) intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


@contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 while the profiler starts and stops: its C++ layer (kineto) writes a log line per
    start and stop on every rank into the trial's console output, and KINETO_LOG_LEVEL does not silence it."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class CommProfiler(TrainerCallback):
    def __init__(self, step: int | None, device):
        self.step, self.device = step, device
        self.index, self.profiler, self.figures = 0, None, {"comm_share": None, "comm_seconds": None}

    def on_step_begin(self, args, state, control, **kwargs):
        if self.index != self.step:
            return
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.device.type == "cuda" else [])
        self.profiler = profile(activities=activities)
        with _quiet_stderr():
            self.profiler.__enter__()
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.index += 1
        if self.profiler is None:
            return
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)
        wall = time.perf_counter() - self.started
        with _quiet_stderr():
            self.profiler.__exit__(None, None, None)
        on_device = self.device.type == "cuda"
        intervals = [(e.time_range.start, e.time_range.end) for e in self.profiler.events()
                     if COLLECTIVE.search(e.name) and (not on_device or e.device_type.name == "CUDA")]
        seconds = busy_seconds(intervals) / 1e6  # profiler times are microseconds
        self.figures = {"comm_share": min(seconds / wall, 1.0) if wall else None, "comm_seconds": seconds}
        self.profiler = None
