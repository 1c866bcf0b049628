"""Inference latency per method, unmerged and merged side by side (merged: n/a where the method cannot merge)."""

from __future__ import annotations

import numpy as np
from matplotlib.patches import Patch

from bench.report.plots.memory import colour_ticks
from bench.report.plots.style import (NotApplicable, Plot, bar_grid, colour, family_legend, na_note, panels, rotate_ticks,
                                      save)

WIDTH = 0.38


def _bars(ax, x, means, stds, families, hatch):
    ok = means.notna().to_numpy()
    yerr = stds[ok].to_numpy() if stds[ok].notna().any() else None  # one seed: no bar rather than a zero-height one
    ax.bar(x[ok], means[ok], yerr=yerr, width=WIDTH, color=[colour(f) for f in families[ok]],
           hatch=hatch, edgecolor="white" if not hatch else "0.25", linewidth=0.5, capsize=3, alpha=1 if not hatch else 0.55)
    return ok


def latency(agg, trials, folder) -> Plot:
    if agg["latency_ms_p50_mean"].isna().all():
        raise NotApplicable("no trial recorded its inference latency")
    groups = list(panels(agg))
    fig, axes = bar_grid(agg)
    for ax, (panel, rows) in zip(axes, groups):
        x = np.arange(len(rows))
        families = rows["family"].to_numpy()
        _bars(ax, x - WIDTH / 2, rows["latency_ms_p50_mean"], rows["latency_ms_p50_std"], families, None)
        merged = _bars(ax, x + WIDTH / 2, rows["latency_ms_p50_merged_mean"], rows["latency_ms_p50_merged_std"],
                       families, "//")
        for xi in x[~merged]:  # not applicable: say so where the bar would stand, never draw a zero-height bar
            ax.text(xi + WIDTH / 2, 0, "n/a", ha="center", va="bottom", fontsize=8, color="0.35", rotation=90)
        rotate_ticks(ax, x, list(rows["label"]))
        colour_ticks(ax, rows)
        ax.set_title(panel)
        ax.set_ylabel("inference latency p50 (ms)")
        na_note(ax, rows.loc[rows["latency_ms_p50_mean"].isna(), "label"])
    modes = [Patch(facecolor="0.5", label="unmerged (method active)"),
             Patch(facecolor="0.5", alpha=0.55, hatch="//", edgecolor="0.25", label="merged into weights")]
    family_legend(fig, agg["family"], modes)
    title = "Inference latency: unmerged vs merged"
    caption = ("Median latency of a fixed-size inference batch with the method active (solid) and after merging it "
               "into the base weights (hatched); n/a: the method cannot merge. Error bars: ± std over seeds.")
    return Plot("latency", title, caption, save(fig, folder, "latency", title))
