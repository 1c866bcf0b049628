"""Peak training memory stacked by where it goes, one bar per method, one panel per model × task.

Parts: weights, runtime/other (CPU only: RSS before training minus the weights), gradients, optimizer state,
activations (the rest of the peak). They add up to the peak, drawn as a black tick with ± std over seeds.
"""

from __future__ import annotations

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from bench.report.plots.style import (
    NotApplicable,
    Plot,
    bar_panels,
    bytes_unit,
    family_legend,
    save,
)
from bench.results.metrics import MEMORY_PARTS, METRICS

PART_COLOURS = ["#4c72b0", "#b0b0b0", "#dd8452", "#c44e52", "#8172b3", "#937860"]


def memory_breakdown(agg, trials, folder) -> Plot:
    if agg["peak_mem_bytes_mean"].isna().all():
        raise NotApplicable("no trial recorded its peak memory")
    scale, unit = bytes_unit(agg["peak_mem_bytes_mean"])
    parts = [p for p in MEMORY_PARTS if agg[f"{p}_mean"].notna().any()]

    def stacked(ax, rows, x):
        stack = rows[[f"{p}_mean" for p in parts]].fillna(0.0).to_numpy() / scale  # a part not measured adds nothing
        bottom = np.zeros(len(rows))
        for i, part in enumerate(parts):
            ax.bar(x, stack[:, i], bottom=bottom, color=PART_COLOURS[MEMORY_PARTS.index(part)], width=0.65,
                   edgecolor="white", linewidth=0.5)
            bottom += stack[:, i]
        peak, std = rows["peak_mem_bytes_mean"] / scale, rows["peak_mem_bytes_std"] / scale
        ax.errorbar(x, peak, yerr=std.to_numpy() if std.notna().any() else None, fmt="_", color="black",
                    markersize=28, capsize=4, zorder=3)

    fig = bar_panels(agg, "peak_mem_bytes_mean", f"peak training memory ({unit})", stacked)
    legend = [Patch(color=PART_COLOURS[MEMORY_PARTS.index(p)], label=METRICS[p].label) for p in reversed(parts)]
    legend.append(Line2D([], [], marker="_", linestyle="", color="black", markersize=14, label="measured peak ± std"))
    fig.legend(handles=legend, title="memory part", loc="upper left", bbox_to_anchor=(1.0, 0.55), frameon=False)
    family_legend(fig, agg["family"], title="family (tick colour)")
    title = "Peak training memory by part"
    caption = ("Peak memory of the training phase per method, stacked by weights, runtime/other (CPU: RSS before "
               "training minus weights), gradients, optimizer state and activations (the rest of the peak).")
    return Plot("memory_breakdown", title, caption, save(fig, folder, "memory_breakdown", title))
