"""Communication share of a training step: torch.profiler over one step of each rank, the time collectives held the
step up (exposed: under way while no compute ran) divided by the step's wall time.

The profiled step is the last one; the profiler starts a step before it (its start-up took hundreds of milliseconds
on a busy machine: inside the profiled step it would read as the other ranks' time waiting in a collective). Both
steps come after the CPU memory window, the warm-up and the FLOP-counted step, and leave a timed step before them:
the profiler's own allocations stay out of the memory peak (on GPU, where the peak covers every step, they run with
the memory tracker paused) and its overhead out of the speed figures (both are left out of the timed steps). n/a
where the trial has no such steps (train.max_steps too small).

A collective is any profiled event whose name says so: c10d, gloo, nccl, all_reduce, all_gather (FSDP's all-gather
spans, their copy-in and copy-out included), reduce_scatter, broadcast, and waits on them. Compute is every other
innermost operator (CPU) or kernel (GPU) outside a collective's span. Nested and concurrent events are merged into
one set of intervals, so time is never counted twice. DDP overlaps its gradient all-reduce with the backward pass and
gloo runs collectives on threads of its own: the time a collective was under way (comm_seconds) is then much more than
the time the step waited for it, and only the part no compute covered (comm_exposed_seconds) is the share. On CPU the
gaps between operators (Python, the optimizer's bookkeeping) count as uncovered, so the share is an upper bound.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager, nullcontext

from transformers import TrainerCallback

from bench.trackers.memory import MIN_WINDOW_STEPS, SETTLE_STEPS

STEP_SPAN = "peft-bench: profiled step"  # a record_function span around the step, from its start to its end
COLLECTIVE = re.compile(r"c10d|gloo|nccl|all_?reduce|all_?gather|reduce_?scatter|broadcast|all_to_all|wait_tensor",
                        re.IGNORECASE)


def profiled_step(max_steps: int, warmup_steps: int, measure_flops: bool) -> int | None:
    """The last step, where it and the profiler's warm-up step before it come after the memory window and the step
    that settles malloc after it, the warm-up and the FLOP-counted step, with at least one timed step before them;
    None where there is none."""
    last = max_steps - 1
    # steps 0 .. untimed-1: never timed
    untimed = max(warmup_steps, MIN_WINDOW_STEPS, 1 if measure_flops else 0) + SETTLE_STEPS
    return last if last - 1 >= untimed + 1 else None


def union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (start, end) intervals merged: sorted, disjoint."""
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def busy_seconds(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of (start, end) intervals."""
    return sum(end - start for start, end in union(intervals))


def exposed(collectives: list[tuple[float, float]], compute: list[tuple[float, float]]) -> float:
    """Length of the time some collective was under way and no compute ran."""
    covering = union(compute)
    total = 0.0
    for start, end in union(collectives):
        uncovered = end - start
        for c_start, c_end in covering:
            if c_end <= start:
                continue
            if c_start >= end:
                break
            uncovered -= min(end, c_end) - max(start, c_start)
        total += uncovered
    return total


def _inside_collective(event) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if COLLECTIVE.search(parent.name):
            return True
        parent = parent.cpu_parent
    return False


def timeline(events, on_device: bool, window: tuple[float, float]) -> tuple[list, list]:
    """(collective intervals, compute intervals) of a profiled step's events, in the profiler's microseconds, cut to
    the step's window (the recording also holds the Trainer's work between the two steps: logging gathers the loss
    from every rank, a collective that waits for the slowest). GPU: kernels on the device; CPU: collectives' spans
    and the innermost operators outside them."""
    collectives, compute = [], []
    for event in events:
        if (on_device and event.device_type.name != "CUDA") or event.name == STEP_SPAN:
            continue
        span = (max(event.time_range.start, window[0]), min(event.time_range.end, window[1]))
        if span[0] >= span[1]:
            continue
        if COLLECTIVE.search(event.name):
            collectives.append(span)
        elif on_device or (not event.cpu_children and not _inside_collective(event)):
            compute.append(span)
    return collectives, compute


def share(events, on_device: bool, window: tuple[float, float] | None = None) -> dict:
    """comm_share (exposed), comm_seconds (all collective time) and comm_exposed_seconds of one profiled step; the
    step's window is the STEP_SPAN event's unless given (profiler microseconds). n/a where the step was not seen."""
    if window is None:
        spans = [(e.time_range.start, e.time_range.end) for e in events if e.name == STEP_SPAN]
        if not spans:
            return {"comm_share": None, "comm_seconds": None, "comm_exposed_seconds": None}
        window = spans[0]
    collectives, compute = timeline(events, on_device, window)
    seconds, hidden = busy_seconds(collectives) / 1e6, exposed(collectives, compute) / 1e6  # profiler: microseconds
    wall = (window[1] - window[0]) / 1e6
    return {"comm_share": hidden / wall if wall > 0 else None, "comm_seconds": seconds,
            "comm_exposed_seconds": hidden}


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
    """Profiles step `step` (None: none) after a profiler warm-up over the step before, both with the memory tracker
    paused (`outside_memory`, a context manager factory) so that the profiler's buffers never count in the peak; the
    caller leaves `untimed_steps` out of the speed figures (ThroughputCallback.leave_out)."""

    def __init__(self, step: int | None, device, outside_memory=nullcontext):
        self.step, self.device, self.outside_memory = step, device, outside_memory
        self.untimed_steps = () if step is None else (step - 1, step)
        self.index, self.profiler, self._paused = 0, None, None
        self.figures = {"comm_share": None, "comm_seconds": None, "comm_exposed_seconds": None}

    def on_step_begin(self, args, state, control, **kwargs):
        if self.step is not None and self.index == self.step - 1:
            self._start()
        elif self.profiler is not None and self.index == self.step:
            from torch.profiler import record_function

            self._span = record_function(STEP_SPAN)
            self._span.__enter__()

    def _start(self):
        from torch.profiler import ProfilerActivity, profile, schedule

        self._paused = self.outside_memory()
        self._paused.__enter__()
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.device.type == "cuda" else [])
        # acc_events: keep the recorded step's events after the profiler stops (and no warning that it would not)
        self.profiler = profile(activities=activities, schedule=schedule(wait=0, warmup=1, active=1), acc_events=True)
        with _quiet_stderr():
            self.profiler.__enter__()

    def on_step_end(self, args, state, control, **kwargs):
        index, self.index = self.index, self.index + 1
        if self.profiler is None:
            return
        if index == self.step - 1:  # warm-up over: record the next step
            with _quiet_stderr():
                self.profiler.step()
            return
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)  # the step's kernels end inside its span
        self._span.__exit__(None, None, None)
        with _quiet_stderr():
            self.profiler.step()  # the recording ends
            self.profiler.__exit__(None, None, None)
        self.figures = share(self.profiler.events() or [], self.device.type == "cuda")
        self.profiler = None
        self._paused.__exit__(None, None, None)
