"""Energy per phase, from the hardware's own cumulative counters.

GPU: NVML's total-energy counter of the trial's device (Volta and later; 64-bit millijoules, it never wraps).
CPU: RAPL through the powercap sysfs tree (/sys/class/powercap/intel-rapl:N, package domains; AMD's RAPL shows
there too), where the counters are readable (often root only). A RAPL counter wraps at max_energy_range_uj (65 to
262 kJ: a few minutes of a busy package), and a reading cannot tell how many times it wrapped since the last one,
so a background thread samples it every SAMPLE_S seconds, far inside one wrap period: a long phase loses no wrap.
Both count the whole device or CPU package, every process on it: on a shared machine the figure is an upper bound
of the trial's own. Where neither is readable the figures are n/a (None), never 0; so is a phase too short for the
counter to move (its energy is below the counter's resolution, not 0).
"""

from __future__ import annotations

import platform
import threading
import weakref
from pathlib import Path

import torch

from bench.trackers import nvml

POWERCAP = Path("/sys/class/powercap")
SAMPLE_S = 1.0  # a package wraps after 65 kJ at the least: over a minute even at 1 kW


class RaplReader:
    """Cumulative joules over the CPU packages, with each counter's wrap-around (max_energy_range_uj) undone; sampled
    every `sample_s` seconds by a daemon thread (None: only when read, for tests) so that no wrap goes unseen."""

    source = "rapl (CPU packages, all processes)"

    def __init__(self, domains: list[Path], sample_s: float | None = SAMPLE_S):
        self.domains = domains
        self.ranges_uj = [int((d / "max_energy_range_uj").read_text()) for d in domains]
        self.last_uj = [self._raw(d) for d in domains]
        self.total_uj = 0
        self.samples = 0
        self.key = f"rapl:{platform.node()}"  # ranks on one host share its packages: the group counts them once
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        if sample_s:
            thread = threading.Thread(target=_sample_forever, args=(weakref.ref(self), self._stopped, sample_s),
                                      name="rapl-sampler", daemon=True)
            thread.start()
            weakref.finalize(self, self._stopped.set)

    @staticmethod
    def _raw(domain: Path) -> int:
        return int((domain / "energy_uj").read_text())

    def sample(self) -> None:
        """Add each counter's rise since its last reading (at most one wrap, as sampling guarantees)."""
        with self._lock:
            now = [self._raw(d) for d in self.domains]
            for index, value in enumerate(now):
                step = value - self.last_uj[index]
                self.total_uj += step if step >= 0 else step + self.ranges_uj[index] + 1
                self.last_uj[index] = value
            self.samples += 1

    def read(self) -> float:
        self.sample()
        return self.total_uj / 1e6

    def close(self) -> None:
        self._stopped.set()


def _sample_forever(reader_ref, stopped: threading.Event, sample_s: float) -> None:
    """The sampling loop; holds the reader only weakly, so a dropped reader ends its thread."""
    while not stopped.wait(sample_s):
        reader = reader_ref()
        if reader is None:
            return
        try:
            reader.sample()
        except (OSError, ValueError):  # a counter unreadable for a moment: the next sample covers the interval
            pass
        del reader


def rapl_reader(root: Path = POWERCAP, sample_s: float | None = SAMPLE_S) -> RaplReader | None:
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
        return RaplReader(domains, sample_s)
    except (OSError, ValueError):  # energy_uj is root-only on most kernels since 2020
        return None


class NvmlReader:
    source = "nvml (whole GPU, all processes)"

    def __init__(self, handle, key: str):
        self.handle, self.key = handle, key  # key: the GPU's UUID, one per device however the ranks number it

    def read(self) -> float | None:
        return nvml.energy_joules(self.handle)


def _gpu_key(device: torch.device) -> str:
    index = device.index if device.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    return nvml._uuid(props) or nvml._pci_bus_id(props) or f"{platform.node()}:cuda{index}"


def reader(device, powercap: Path = POWERCAP):
    """The energy reader for a device, or None where its energy is not readable."""
    device = torch.device(device)
    if device.type == "cuda":
        handle = nvml.handle(device)
        if handle is None or nvml.energy_joules(handle) is None:
            return None
        return NvmlReader(handle, _gpu_key(device))
    return rapl_reader(powercap)


class EnergyMeter:
    """Joules per named phase: `with meter("train"): ...`; meter.joules == {"train": 12.3} (empty without a reader;
    None for a phase whose counter never moved)."""

    def __init__(self, energy_reader=None):
        self.reader = energy_reader
        self.joules: dict[str, float | None] = {}

    @property
    def source(self) -> str | None:
        return self.reader.source if self.reader else None

    @property
    def key(self) -> str | None:
        """Which device's counter this is (a GPU's UUID, a host's RAPL packages): the group sums each once."""
        return getattr(self.reader, "key", None) if self.reader else None

    def start(self) -> float | None:
        return self.reader.read() if self.reader else None

    def stop(self, name: str, started: float | None) -> None:
        ended = self.reader.read() if self.reader else None
        if started is None or ended is None:
            return
        joules = ended - started if ended > started else None  # did not move: below the resolution, n/a
        kept = self.joules.get(name)
        # a phase run several times: the sum of the runs the counter saw (a run it did not see adds under one unit)
        self.joules[name] = joules if kept is None else kept + (joules or 0.0)

    def metrics(self) -> dict:
        """energy_joules_<phase> (None where the counter did not move) and energy_source."""
        figures = {f"energy_joules_{name}": None if value is None else round(value, 3)
                   for name, value in self.joules.items()}
        figures["energy_source"] = self.source
        return figures
