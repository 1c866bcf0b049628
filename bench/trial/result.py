"""What a trial measures, as each step returns it: figures for the record's metrics (the columns of
bench/results/metrics.py) and per-item scores for items.json beside it. Steps return one; the trial adds them up."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Measured:
    figures: dict = field(default_factory=dict)  # column -> value
    items: dict = field(default_factory=dict)  # name -> per-item scores ("quality", "probe_after", "curve"...)

    def add(self, other: Measured | dict) -> Measured:
        """Take another step's figures (and items); later figures of the same column win."""
        if isinstance(other, Measured):
            self.figures.update(other.figures)
            self.items.update(other.items)
        else:
            self.figures.update(other)
        return self
