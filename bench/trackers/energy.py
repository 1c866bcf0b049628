"""Energy per phase, from the hardware's own cumulative counters.

GPU: NVML's total-energy counter of the trial's device (Volta and later).
CPU: RAPL through the powercap sysfs tree (/sys/class/powercap/intel-rapl:N, package domains; AMD's RAPL shows
there too), where the counters are readable (often root only).
Both count the whole device or CPU package, every process on it: on a shared machine the figure is an upper bound
of the trial's own. Where neither is readable the figures are n/a (None), never 0.
"""

from __future__ import annotations

from pathlib import Path

import torch

POWERCAP = Path("/sys/class/powercap")


class RaplReader:
    """Cumulative joules over the CPU packages, with each counter's wrap-around (max_energy_range_uj) undone."""

    source = "rapl (CPU packages, all processes)"

    def __init__(self, domains: list[Path]):
        self.domains = domains
        self.ranges_uj = [int((d / "max_energy_range_uj").read_text()) for d in domains]
        self.last_uj = [self._raw(d) for d in domains]
        self.total_uj = 0

    @staticmethod
    def _raw(domain: Path) -> int:
        return int((domain / "energy_uj").read_text())

    def read(self) -> float:
        for index, domain in enumerate(self.domains):
            now = self._raw(domain)
            step = now - self.last_uj[index]
            self.total_uj += step if step >= 0 else step + self.ranges_uj[index] + 1  # the counter wrapped once
            self.last_uj[index] = now
        return self.total_uj / 1e6


def rapl_reader(root: Path = POWERCAP) -> RaplReader | None:
    """A reader over the package domains under root, or None where none is there or readable."""
    domains = []
    for domain in sorted(root.glob("intel-rapl:*")):
        if domain.name.count(":") != 1:  # intel-rapl:0:0 is a sub-domain (core, dram) of package 0
            continue
        try:
            if (domain / "name").read_text().strip().startswith("package"):
                domains.append(domain)
        except OSError:
            continue
    if not domains:
        return None
    try:
        return RaplReader(domains)
    except (OSError, ValueError):  # energy_uj is root-only on most kernels since 2020
        return None


class NvmlReader:
    source = "nvml (whole GPU, all processes)"

    def __init__(self, handle):
        self.handle = handle

    def read(self) -> float | None:
        from bench.trackers import nvml

        return nvml.energy_joules(self.handle)


def reader(device, powercap: Path = POWERCAP):
    """The energy reader for a device, or None where its energy is not readable."""
    device = torch.device(device)
    if device.type == "cuda":
        from bench.trackers import nvml

        handle = nvml.handle(device)
        if handle is None or nvml.energy_joules(handle) is None:
            return None
        return NvmlReader(handle)
    return rapl_reader(powercap)


class EnergyMeter:
    """Joules per named phase: `with meter("train"): ...`; meter.joules == {"train": 12.3} (empty without a reader)."""

    def __init__(self, energy_reader=None):
        self.reader = energy_reader
        self.joules: dict[str, float] = {}

    @property
    def source(self) -> str | None:
        return self.reader.source if self.reader else None

    def start(self) -> float | None:
        return self.reader.read() if self.reader else None

    def stop(self, name: str, started: float | None) -> None:
        ended = self.reader.read() if self.reader else None
        if started is not None and ended is not None:
            self.joules[name] = self.joules.get(name, 0.0) + ended - started
