"""Every plot of the report, one module per plot family; `draw_all` draws those the sweep can show.

A plot that does not apply (one model size, no forgetting probe) raises NotApplicable with the reason, and the
report says which plots were left out and why. An opt-in plot (the training curve) returns no plot when the sweep
did not ask for it: nothing to say is missing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.report.plots.checkpoint import checkpoint_size
from bench.report.plots.curve import learning_vs_forgetting
from bench.report.plots.forgetting import forgetting_vs_quality
from bench.report.plots.latency import latency
from bench.report.plots.memory import memory_breakdown
from bench.report.plots.scaling import scaling
from bench.report.plots.style import NotApplicable, Plot, theme
from bench.report.plots.tradeoffs import (
    quality_vs_memory,
    quality_vs_throughput,
    quality_vs_trainable,
)

PLOTS = {
    "quality vs trainable fraction": quality_vs_trainable,
    "quality vs peak memory": quality_vs_memory,
    "quality vs throughput": quality_vs_throughput,
    "memory breakdown": memory_breakdown,
    "latency unmerged vs merged": latency,
    "forgetting vs quality": forgetting_vs_quality,
    "learning vs forgetting over training": learning_vs_forgetting,
    "checkpoint size": checkpoint_size,
    "scaling with model size": scaling,
}


def draw_all(agg: pd.DataFrame, trials: pd.DataFrame, folder: Path) -> tuple[list[Plot], dict[str, str]]:
    """(plots drawn, {plot: why it was left out})."""
    theme()
    drawn, left_out = [], {}
    if agg.empty:
        return drawn, {name: "no finished trial" for name in PLOTS}
    for name, draw in PLOTS.items():
        try:
            result = draw(agg, trials, folder)
        except NotApplicable as reason:
            left_out[name] = str(reason)
            continue
        drawn += result if isinstance(result, list) else [result]
    return drawn, left_out


__all__ = ["PLOTS", "NotApplicable", "Plot", "draw_all"]
