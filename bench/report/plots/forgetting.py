"""Forgetting vs quality: the learning–forgetting trade-off, one panel per model × task."""

from __future__ import annotations

from bench.report.plots.style import (
    NotApplicable,
    Plot,
    family_legend,
    grid,
    panels,
    save,
)
from bench.report.plots.tradeoffs import ERRORS, FRONT, TIED, quality_label, scatter


def forgetting_vs_quality(agg, trials, folder) -> Plot:
    if agg["forgetting_mean"].isna().all():
        raise NotApplicable("no trial has a forgetting score (no probe fits the model)")
    groups = list(panels(agg))
    fig, axes = grid(len(groups))
    for ax, (panel, rows) in zip(axes, groups):
        scatter(ax, rows, "quality", "forgetting", "max", "min")
        ax.axhline(0, color="0.6", linewidth=0.8, zorder=1)
        probes = rows["forgetting_probe"].dropna()
        probe = probes.iloc[0] if len(probes) else None
        ax.set_title(panel)
        ax.set_xlabel(quality_label(rows) + " (learned)")
        ax.set_ylabel("forgetting (relative probe loss" + (f", {probe})" if probe else ")"))
    family_legend(fig, agg["family"], [FRONT, TIED])
    title = "Forgetting vs quality"
    return Plot("forgetting_vs_quality", title,
                "What the model learned (task quality, right is better) against what it forgot (relative loss of a "
                "probe the task never trained on, lower is better; 0: nothing forgotten). Dashed: Pareto front."
                + ERRORS,
                save(fig, folder, "forgetting_vs_quality", title))
