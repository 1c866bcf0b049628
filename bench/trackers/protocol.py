"""The one shape of a tracker the trial knows: made per training run, it listens to the Trainer through its
callbacks and returns its record columns as a dict. A new metric is one module of bench/trackers/ defining a
`@register`ed Tracker plus its row in the metric catalogue (bench/results/metrics.py): the trial finds it here.

The long-standing trackers keep their own shapes where they wrap more than a callback can (memory is a context
manager around training, throughput counts tokens in the collator, energy and load time every phase): the trial
drives those itself; everything that only listens to training and reports comes through here.
"""

from __future__ import annotations

import importlib
import pkgutil

_REGISTRY: list[type[Tracker]] = []


class Tracker:
    """Made with the trial's config and device before training; `callbacks()` go to the Trainer (after the speed
    listener, so what they do stays outside the timed steps); `figures()` is read once training has ended."""

    def __init__(self, cfg, device):
        self.cfg, self.device = cfg, device

    def callbacks(self) -> list:
        return []

    def figures(self) -> dict:
        return {}


def register(cls: type[Tracker]) -> type[Tracker]:
    """Class decorator: the trial makes one of these for every training run."""
    if cls not in _REGISTRY:
        _REGISTRY.append(cls)
    return cls


def registered() -> list[type[Tracker]]:
    """Every registered tracker class, after importing each module of bench/trackers/ (each registers its own)."""
    package = importlib.import_module("bench.trackers")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"bench.trackers.{module.name}")
    return list(_REGISTRY)


def start(cfg, device) -> list[Tracker]:
    """One of each registered tracker, for a training run."""
    return [cls(cfg, device) for cls in registered()]


def figures(trackers: list[Tracker]) -> dict:
    """Their columns, together."""
    found = {}
    for tracker in trackers:
        found.update(tracker.figures())
    return found
