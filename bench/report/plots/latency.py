"""Inference latency per method, unmerged and merged side by side (merged: n/a where the method cannot merge)."""

from __future__ import annotations

import pandas as pd
from matplotlib.patches import Patch

from bench.report.plots.style import (
    NotApplicable,
    Plot,
    bar_panels,
    colour,
    family_legend,
    save,
)

WIDTH = 0.38


def _bars(ax, x, means, stds, families, hatch):
    ok = means.notna().to_numpy()
    yerr = stds[ok].to_numpy() if stds[ok].notna().any() else None  # one seed: no bar rather than a zero-height one
    ax.bar(x[ok], means[ok], yerr=yerr, width=WIDTH, color=[colour(f) for f in families[ok]],
           hatch=hatch, edgecolor="white" if not hatch else "0.25", linewidth=0.5, capsize=3,
           alpha=1 if not hatch else 0.55)
    return ok


def _pairs(ax, rows, x) -> None:
    families = rows["family"].to_numpy()
    _bars(ax, x - WIDTH / 2, rows["latency_ms_p50_mean"], rows["latency_ms_p50_std"], families, None)
    merged = _bars(ax, x + WIDTH / 2, rows["latency_ms_p50_merged_mean"], rows["latency_ms_p50_merged_std"],
                   families, "//")
    for xi in x[~merged]:  # not applicable: say so where the bar would stand, never draw a zero-height bar
        ax.text(xi + WIDTH / 2, 0, "n/a", ha="center", va="bottom", fontsize=8, color="0.35", rotation=90)


def latency(agg, trials, folder) -> Plot:
    if agg["latency_ms_p50_mean"].isna().all():
        raise NotApplicable("no trial recorded its inference latency")
    fig = bar_panels(agg, "latency_ms_p50_mean", "inference latency p50 (ms)", _pairs)
    modes = [Patch(facecolor="0.5", label="unmerged (method active)"),
             Patch(facecolor="0.5", alpha=0.55, hatch="//", edgecolor="0.25", label="merged into weights")]
    family_legend(fig, agg["family"], modes)
    title = "Inference latency: unmerged vs merged"
    caption = ("Median latency of a fixed-size inference batch with the method active (solid) and after merging it "
               "into the base weights (hatched); n/a: the method cannot merge. Error bars: ± std over seeds.")
    if not agg.get("timed_alone_all", pd.Series(False, index=agg.index)).eq(True).all():
        caption += (" Not timed alone: some or all of these trials ran beside other work (or did not record what "
                    "ran beside them), so the bars are figures, not verdicts.")
    return Plot("latency", title, caption, save(fig, folder, "latency", title))
