"""Quality against a cost, one panel per model × task, with the Pareto front drawn.

quality vs trainable fraction (log x), vs peak training memory, vs training throughput; forgetting.py reuses
`scatter` for forgetting vs quality. Points are seed means; error bars are ± one std over seeds (seeds > 1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from bench.report.metrics import METRICS, QUALITY_LONG
from bench.report.pareto import front_line
from bench.report.plots.style import Plot, bytes_unit, colour, family_legend, grid, na_note, panels, place_labels, save

FRONT = Line2D([], [], color="0.2", linestyle="--", marker="o", markerfacecolor="none", markersize=11,
               label="Pareto front")


def quality_label(rows: pd.DataFrame) -> str:
    metric = rows["quality_metric"].dropna()
    return f"quality: {QUALITY_LONG.get(metric.iloc[0], metric.iloc[0])}" if len(metric) else "quality"


def scatter(ax, rows: pd.DataFrame, x: str, y: str, x_better: str, y_better: str,
            xscale: float = 1.0, yscale: float = 1.0, logx: bool = False) -> None:
    """Seed means with std bars, method names beside points, the Pareto front dashed and ringed."""
    data = pd.DataFrame({"x": rows[f"{x}_mean"] / xscale, "y": rows[f"{y}_mean"] / yscale,
                         "xerr": rows[f"{x}_std"] / xscale, "yerr": rows[f"{y}_std"] / yscale,
                         "label": rows["label"], "family": rows["family"]})
    missing = data[data[["x", "y"]].isna().any(axis=1)]
    data = data.dropna(subset=["x", "y"])
    for _, p in data.iterrows():
        c = colour(p["family"])
        ax.errorbar(p["x"], p["y"], xerr=None if np.isnan(p["xerr"]) else p["xerr"],
                    yerr=None if np.isnan(p["yerr"]) else p["yerr"], fmt="o", color=c, markersize=7, capsize=3,
                    elinewidth=1, zorder=3)
    front = front_line(data, "x", "y", x_better, y_better)
    if len(front):
        ax.plot(front["x"], front["y"], linestyle="--", color="0.2", linewidth=1, zorder=2)
        ax.scatter(front["x"], front["y"], s=150, facecolors="none", edgecolors="0.2", linewidths=1, zorder=2)
    if logx:
        ax.set_xscale("log")
    ax.margins(x=0.15, y=0.15)
    # points that coincide share one label ("bitfit = adapter-houlsby") instead of two stacked ones
    shared = data.groupby(["x", "y"], sort=False)["label"].agg(" = ".join).reset_index()
    place_labels(ax, shared["x"], shared["y"], shared["label"])
    na_note(ax, missing["label"])


def _tradeoff(agg, folder, name, title, caption, x, x_better, xlabel, xscale=1.0, logx=False) -> Plot:
    groups = list(panels(agg))
    fig, axes = grid(len(groups))
    for ax, (panel, rows) in zip(axes, groups):
        scatter(ax, rows, x, "quality", x_better, "max", xscale=xscale, logx=logx)
        ax.set_title(panel)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(quality_label(rows))
    family_legend(fig, agg["family"], [FRONT])
    return Plot(name, title, caption, save(fig, folder, name, title))


def quality_vs_trainable(agg, trials, folder) -> Plot:
    return _tradeoff(agg, folder, "quality_vs_trainable_fraction", "Quality vs trainable parameters",
                     "Task quality against the share of parameters trained (log scale); the dashed line joins the "
                     "Pareto-optimal methods (fewest trainable parameters for their quality).",
                     "trainable_fraction", "min", "trainable parameters (% of total, log scale)", xscale=0.01, logx=True)


def quality_vs_memory(agg, trials, folder) -> Plot:
    scale, unit = bytes_unit(agg["peak_mem_bytes_mean"])
    return _tradeoff(agg, folder, "quality_vs_peak_memory", "Quality vs peak training memory",
                     f"Task quality against peak memory of the training phase ({METRICS['peak_mem_bytes'].help}); "
                     "dashed: Pareto front.", "peak_mem_bytes", "min", f"peak training memory ({unit})", xscale=scale)


def quality_vs_throughput(agg, trials, folder) -> Plot:
    return _tradeoff(agg, folder, "quality_vs_throughput", "Quality vs training throughput",
                     "Task quality against training throughput (tokens/s, warm-up steps excluded); dashed: Pareto front.",
                     "train_tokens_per_s", "max", "training throughput (tokens/s)")
