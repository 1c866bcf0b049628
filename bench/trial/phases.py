"""The phases of a trial: the one in progress (for the failure record), the wall seconds spent in each (for the
sweep's split of useful work against fixed per-trial cost), and what the phase trackers saw during each."""

from __future__ import annotations

import time
from contextlib import contextmanager

from bench.trackers.energy import EnergyMeter
from bench.trackers.load import LoadMeter


class Phases:
    """Where the hardware's counters are readable the joules of each phase (bench.trackers.energy), and what else
    ran beside it (load average, CPU share of other processes: bench.trackers.load)."""

    def __init__(self):
        self.current = "config"
        self.seconds: dict[str, float] = {}
        self.energy = EnergyMeter()  # no reader until the device is known (bench.trial.load)
        self.load = LoadMeter()

    @contextmanager
    def __call__(self, name: str):
        self.current = name
        started, joules, load = time.perf_counter(), self.energy.start(), self.load.start()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
        self.energy.stop(name, joules)
        self.load.stop(name, load)

    def metrics(self) -> dict:
        figures = {f"seconds_{name}": round(value, 4) for name, value in self.seconds.items()}
        figures.update(self.energy.metrics())  # energy_joules_<phase> (None where the counter did not move), source
        figures.update(self.load.metrics())
        return figures
