"""What else ran beside a trial: per phase, the 1-minute load average and the share of the machine's CPU time that
other processes took; and how many trials the sweep ran at once. Speed and latency are figures of the trial alone
only where both say so (`timed_alone`): two trials side by side on 2 cores moved a latency p50 from 1,506 to 2,989 ms.

The share is read from the kernel's cumulative CPU counters (psutil.cpu_times: /proc/stat on Linux) at each phase's
start and end, less the CPU time of this trial's own processes (the trial process and every process under it: the
ranks of a distributed trial, the child that fills a cold cache): busy time of others over all CPU time the machine
had, 0 (an idle machine but for the trial) to 1.
"""

from __future__ import annotations

import contextlib
import os

import psutil

CONCURRENT_ENV = "PEFT_BENCH_CONCURRENT_TRIALS"  # set by the sweep process: "<trials at once>|<where that is from>"
TRIAL_ROOT_ENV = "PEFT_BENCH_TRIAL_PID"  # the trial's own process: ranks it starts count their siblings as its own
ALONE_SHARE = 0.15  # below this share of the machine's CPU taken by others, a phase counts as timed alone
ALONE_PHASES = ("train", "latency")  # the phases whose timings make the speed and latency figures
BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq", "steal")  # guest time is already inside user and nice
IDLE_FIELDS = ("idle", "iowait")


def machine_cpu_seconds() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot; None where the counters cannot be read."""
    try:
        times = psutil.cpu_times()
    except (OSError, psutil.Error):
        return None
    busy = sum(getattr(times, name, 0.0) for name in BUSY_FIELDS)
    return busy, busy + sum(getattr(times, name, 0.0) for name in IDLE_FIELDS)


def own_cpu_seconds(root_pid: int) -> float | None:
    """CPU seconds of the trial's processes: the root, its finished children, and every live process under it."""
    try:
        root = psutil.Process(root_pid)
        times = root.cpu_times()
        seconds = times.user + times.system + times.children_user + times.children_system
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child_times = child.cpu_times()
                seconds += child_times.user + child_times.system
    except psutil.Error:
        return None
    return seconds


def load_average_1m() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


class LoadMeter:
    """start() at a phase's start, stop(phase, started) at its end; metrics() per phase. A phase run twice adds up
    its CPU time, and keeps the higher load average."""

    def __init__(self):
        self.root_pid = int(os.environ.get(TRIAL_ROOT_ENV) or os.getpid())
        self.busy: dict[str, float] = {}
        self.total: dict[str, float] = {}
        self.own: dict[str, float] = {}
        self.load: dict[str, float] = {}

    def start(self):
        return machine_cpu_seconds(), own_cpu_seconds(self.root_pid)

    def stop(self, phase: str, started) -> None:
        machine, own = machine_cpu_seconds(), own_cpu_seconds(self.root_pid)
        if None not in (machine, own, started[0], started[1]):
            self.busy[phase] = self.busy.get(phase, 0.0) + machine[0] - started[0][0]
            self.total[phase] = self.total.get(phase, 0.0) + machine[1] - started[0][1]
            self.own[phase] = self.own.get(phase, 0.0) + own - started[1]
        load = load_average_1m()
        if load is not None:
            self.load[phase] = max(load, self.load.get(phase, load))

    def share_others(self, phase: str) -> float | None:
        """Busy CPU time of other processes over the machine's CPU time in the phase (0..1); None (n/a) where the
        counters could not be read or did not move (a phase shorter than their 10 ms tick)."""
        total = self.total.get(phase)
        if not total:
            return None
        return min(1.0, max(0.0, (self.busy[phase] - self.own[phase]) / total))

    def metrics(self) -> dict:
        figures = {f"load_avg_1m_{phase}": round(value, 3) for phase, value in self.load.items()}
        for phase in self.total:
            share = self.share_others(phase)
            figures[f"cpu_share_others_{phase}"] = None if share is None else round(share, 4)
        return figures


def concurrent_trials() -> tuple[int | None, str]:
    """(trials the sweep ran at once, where that figure comes from): 1 for a run of one trial; what the sweep
    process put in CONCURRENT_ENV otherwise (None where its launcher does not say)."""
    given = os.environ.get(CONCURRENT_ENV)
    if not given:
        return 1, "single run"
    count, _, source = given.partition("|")
    return (int(count) if count.isdigit() else None), source


def alone(metrics: dict) -> dict:
    """`concurrent_trials`, its source, and `timed_alone`: one trial at a time, and other processes took under
    ALONE_SHARE of the machine's CPU over every phase that times speed or latency (false where one is n/a)."""
    count, source = concurrent_trials()
    shares = [metrics.get(f"cpu_share_others_{phase}") for phase in ALONE_PHASES]
    quiet = all(share is not None and share < ALONE_SHARE for share in shares)
    return {"concurrent_trials": count, "concurrent_trials_source": source, "timed_alone": count == 1 and quiet}
