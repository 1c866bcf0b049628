"""Checkpoint size per method (log scale): the bytes each method stores per task."""

from __future__ import annotations

import numpy as np

from bench.report.metrics import human_bytes
from bench.report.plots.memory import colour_ticks
from bench.report.plots.style import (NotApplicable, Plot, bar_grid, colour, family_legend, na_note, panels, rotate_ticks,
                                      save)


def checkpoint_size(agg, trials, folder) -> Plot:
    if agg["checkpoint_bytes_mean"].isna().all():
        raise NotApplicable("no trial recorded its checkpoint size")
    groups = list(panels(agg))
    fig, axes = bar_grid(agg)
    for ax, (panel, rows) in zip(axes, groups):
        shown = rows[rows["checkpoint_bytes_mean"].notna()]
        x = np.arange(len(shown))
        mib = shown["checkpoint_bytes_mean"] / 1024**2
        std = shown["checkpoint_bytes_std"] / 1024**2
        ax.bar(x, mib, yerr=std.to_numpy() if std.notna().any() else None, width=0.65, capsize=3,
               color=[colour(f) for f in shown["family"]])
        for xi, value in zip(x, shown["checkpoint_bytes_mean"]):
            ax.annotate(human_bytes(value), (xi, value / 1024**2), xytext=(0, 3), textcoords="offset points",
                        ha="center", va="bottom", fontsize=8)
        ax.set_yscale("log")
        ax.margins(y=0.15)
        rotate_ticks(ax, x, list(shown["label"]))
        colour_ticks(ax, shown)
        ax.set_title(panel)
        ax.set_ylabel("checkpoint per task (MiB, log scale)")
        na_note(ax, rows.loc[rows["checkpoint_bytes_mean"].isna(), "label"])
    family_legend(fig, agg["family"])
    title = "Checkpoint size per task"
    caption = ("Bytes each method must store per task: the adapter or changed tensors only, or the whole model for "
               "full fine-tuning (log scale).")
    return Plot("checkpoint_size", title, caption, save(fig, folder, "checkpoint_size", title))
