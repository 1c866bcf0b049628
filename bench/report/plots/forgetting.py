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
from bench.report.plots.tradeoffs import ERRORS, legend_extras, quality_label, scatter

UNITS = {"perplexity": "perplexity rise, after / before − 1 (decoder)",
         "retrieval_recall@1": "recall@1 loss, (before − after) / before (encoder)"}


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
        ax.set_ylabel("forgetting: " + UNITS.get(probe, f"relative loss of {probe}" if probe else "relative loss"))
        if probe == "perplexity" and rows["forgetting_mean"].abs().max() > 100:
            ax.set_yscale("symlog", linthresh=1.0)  # a collapsed model's rise of 1e13 beside rises of 0.5
    family_legend(fig, agg["family"], legend_extras(agg))
    title = "Forgetting vs quality"
    return Plot("forgetting_vs_quality", title,
                "What the model learned (task quality, right is better) against what it forgot on a probe the task "
                "never trained on (lower is better; 0: nothing forgotten): an encoder's retrieval recall@1 loss, a "
                "decoder's perplexity rise (geometric mean over seeds; symmetric log axis where a rise passes 100), "
                "two constructs never compared across panels. Dashed: Pareto front."
                + ERRORS,
                save(fig, folder, "forgetting_vs_quality", title))
