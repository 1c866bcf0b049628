"""Energy: RAPL sampled in the background so that no counter wrap goes unseen, a phase whose counter did not move
reads n/a (never 0), and a distributed trial's energy summed over every rank's GPU, each RAPL host counted once.

.venv/bin/python -m pytest -q tests/test_energy.py
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench.trackers import energy

RANGE_UJ = 1_000_000  # a counter that wraps every joule


def _package(root: Path, energy_uj: int) -> Path:
    domain = root / "intel-rapl:0"
    domain.mkdir(parents=True, exist_ok=True)
    (domain / "name").write_text("package-0\n")
    (domain / "max_energy_range_uj").write_text(f"{RANGE_UJ - 1}\n")
    (domain / "energy_uj").write_text(f"{energy_uj}\n")
    return domain / "energy_uj"


def _wait_for_sample(reader, seen: int) -> None:
    deadline = time.monotonic() + 5
    while reader.samples <= seen:
        assert time.monotonic() < deadline, "the sampler never read the counter"
        time.sleep(0.005)


def test_a_phase_longer_than_a_wrap_period_keeps_every_wrap(tmp_path):
    counter = _package(tmp_path, 0)
    reader = energy.rapl_reader(tmp_path, sample_s=0.01)
    try:
        meter = energy.EnergyMeter(reader)
        started = meter.start()
        # the counter runs 0 -> 0.9 J -> wraps -> 0.1 J -> 0.6 J: 1.6 J in all, over one wrap period
        for value in (900_000, 100_000, 600_000):
            seen = reader.samples
            counter.write_text(f"{value}\n")
            _wait_for_sample(reader, seen)
        meter.stop("train", started)
    finally:
        reader.close()
    assert meter.joules["train"] == pytest.approx(1.6)  # read at the phase's ends only: 0.6 J


def test_a_phase_whose_counter_did_not_move_is_na_not_zero(tmp_path):
    counter = _package(tmp_path, 500)
    meter = energy.EnergyMeter(energy.rapl_reader(tmp_path, sample_s=None))
    meter.stop("config", meter.start())  # shorter than the counter's update interval
    started = meter.start()
    counter.write_text("2500\n")  # the train phase saw 2 mJ
    meter.stop("train", started)
    figures = meter.metrics()
    assert figures["energy_joules_config"] is None and figures["energy_joules_train"] == pytest.approx(0.002)
