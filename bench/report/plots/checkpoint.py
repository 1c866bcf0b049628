"""Checkpoint size per method (log scale): the bytes each method stores per task."""

from __future__ import annotations

from bench.report.plots.style import (
    NotApplicable,
    Plot,
    bar_panels,
    colour,
    family_legend,
    save,
)
from bench.results.metrics import human_bytes


def _bars(ax, rows, x) -> None:
    mib = rows["checkpoint_bytes_mean"] / 1024**2
    std = rows["checkpoint_bytes_std"] / 1024**2
    ax.bar(x, mib, yerr=std.to_numpy() if std.notna().any() else None, width=0.65, capsize=3,
           color=[colour(f) for f in rows["family"]])
    for xi, value in zip(x, rows["checkpoint_bytes_mean"]):
        ax.annotate(human_bytes(value), (xi, value / 1024**2), xytext=(0, 3), textcoords="offset points",
                    ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.margins(y=0.15)


def checkpoint_size(agg, trials, folder) -> Plot:
    if agg["checkpoint_bytes_mean"].isna().all():
        raise NotApplicable("no trial recorded its checkpoint size")
    fig = bar_panels(agg, "checkpoint_bytes_mean", "checkpoint per task (MiB, log scale)", _bars)
    family_legend(fig, agg["family"])
    title = "Checkpoint size per task"
    caption = ("Bytes each method must store per task: the adapter or changed tensors only, or the whole model for "
               "full fine-tuning (log scale).")
    return Plot("checkpoint_size", title, caption, save(fig, folder, "checkpoint_size", title))
