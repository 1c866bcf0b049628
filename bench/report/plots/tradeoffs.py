"""Quality against a cost, one panel per model × task, with the Pareto front drawn.

quality vs trainable fraction (log x), vs peak training memory, vs training throughput; forgetting.py reuses
`scatter` for forgetting vs quality. Points are seed means. Quality's error bars are its 95% interval over items
(and seeds), other axes' ± one std over seeds (seeds > 1). The methods tied at the top of quality are not ranked
among themselves: a grey band spans them and each is ringed in grey, and the Pareto front levels their quality
to the top's, so only cost separates them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from bench.report.pareto import front_line
from bench.report.plots.style import (
    Plot,
    bytes_unit,
    colour,
    family_legend,
    grid,
    na_note,
    panels,
    place_labels,
    save,
)
from bench.results.metrics import METRICS, QUALITY_LONG

FRONT = Line2D([], [], color="0.2", linestyle="--", marker="o", markerfacecolor="none", markersize=11,
               label="Pareto front")
TIED = Line2D([], [], color="0.55", linestyle="", marker="o", markerfacecolor="none", markersize=13,
              markeredgewidth=2.5, label="not shown worse than the\nbest quality (grey band)")
UNSTABLE = " (unstable)"
UNSTABLE_POINT = Line2D([], [], color="0.3", linestyle="", marker="o", markerfacecolor="white", markersize=7,
                        label="unstable: a seed at the baseline\nor far from the others; never\non the front")


def quality_label(rows: pd.DataFrame) -> str:
    metric = rows["quality_metric"].dropna()
    return f"quality: {QUALITY_LONG.get(metric.iloc[0], metric.iloc[0])}" if len(metric) else "quality"


def _errors(rows: pd.DataFrame, column: str, scale: float) -> tuple[pd.Series, pd.Series]:
    """(below, above) bar lengths: the 95% interval where the aggregate has one, else ± std over seeds."""
    mean = rows[f"{column}_mean"]
    low, high = rows.get(f"{column}_ci_low"), rows.get(f"{column}_ci_high")
    if low is not None and high is not None and low.notna().any():
        below, above = (mean - low).clip(lower=0), (high - mean).clip(lower=0)
        std = rows[f"{column}_std"].where(low.isna())  # rows without an interval keep their std
        return below.fillna(std) / scale, above.fillna(std) / scale
    return rows[f"{column}_std"] / scale, rows[f"{column}_std"] / scale


def scatter(ax, rows: pd.DataFrame, x: str, y: str, x_better: str, y_better: str,
            xscale: float = 1.0, yscale: float = 1.0, logx: bool = False) -> None:
    """Seed means with error bars, method names beside points, the top tie set banded in grey, the Pareto front
    dashed and ringed."""
    (xlo, xhi), (ylo, yhi) = _errors(rows, x, xscale), _errors(rows, y, yscale)
    tied = rows["quality_tied"].eq(True) if "quality_tied" in rows else pd.Series(False, index=rows.index)
    unstable = (rows["unstable"].map(lambda v: isinstance(v, str) and v != "") if "unstable" in rows
                else pd.Series(False, index=rows.index))
    labels = rows["label"].where(~unstable, rows["label"] + UNSTABLE)
    data = pd.DataFrame({"x": rows[f"{x}_mean"] / xscale, "y": rows[f"{y}_mean"] / yscale, "xlo": xlo, "xhi": xhi,
                         "ylo": ylo, "yhi": yhi, "label": labels, "family": rows["family"], "tied": tied,
                         "unstable": unstable})
    missing = data[data[["x", "y"]].isna().any(axis=1)]
    data = data.dropna(subset=["x", "y"])
    for _, p in data.iterrows():
        xerr = None if np.isnan(p["xlo"]) else [[p["xlo"]], [p["xhi"]]]
        yerr = None if np.isnan(p["ylo"]) else [[p["ylo"]], [p["yhi"]]]
        ax.errorbar(p["x"], p["y"], xerr=xerr, yerr=yerr, fmt="o", color=colour(p["family"]), markersize=7,
                    capsize=3, elinewidth=1, zorder=3, markerfacecolor="white" if p["unstable"] else None)
    quality_axis = "y" if y == "quality" else "x" if x == "quality" else None
    level = data.copy()
    if quality_axis and data["tied"].sum() > 1:
        top = data.loc[data["tied"], quality_axis]
        span = (ax.axhspan if quality_axis == "y" else ax.axvspan)(top.min(), top.max(), color="0.88", zorder=0)
        span.set_label("_tie band")
        ax.scatter(data.loc[data["tied"], "x"], data.loc[data["tied"], "y"], s=190, facecolors="none",
                   edgecolors="0.55", linewidths=2.5, zorder=2)
        level.loc[level["tied"], quality_axis] = top.max()  # tied: equal on quality for the front
    on_front = front_line(level[~level["unstable"]], "x", "y", x_better, y_better).index  # unstable: never on it
    front = data.loc[on_front].sort_values("x")
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
    family_legend(fig, agg["family"], legend_extras(agg))
    return Plot(name, title, caption + ERRORS, save(fig, folder, name, title))


def legend_extras(agg: pd.DataFrame) -> list:
    unstable = "unstable" in agg and agg["unstable"].map(lambda v: isinstance(v, str) and v != "").any()
    return [FRONT, TIED] + ([UNSTABLE_POINT] if unstable else [])


ERRORS = (" Error bars: quality's 95% interval over the evaluated items and seeds (seed part on t(seeds − 1)), ± std "
          "over seeds on the other axis. Ringed in grey over a grey band: the methods not shown worse than the best "
          "quality (multiple comparisons with the best); the front treats them as equal in quality. Hollow and "
          "marked (unstable): a seed at the task's trivial baseline or far from the method's other seeds; never on "
          "the front.")


def quality_vs_trainable(agg, trials, folder) -> Plot:
    return _tradeoff(agg, folder, "quality_vs_trainable_fraction", "Quality vs trainable parameters",
                     "Task quality against the share of parameters trained (log scale); the dashed line joins the "
                     "Pareto-optimal methods (fewest trainable parameters for their quality).",
                     "trainable_fraction", "min", "trainable parameters (% of total, log scale)",
                     xscale=0.01, logx=True)


def quality_vs_memory(agg, trials, folder) -> Plot:
    scale, unit = bytes_unit(agg["peak_mem_bytes_mean"])
    return _tradeoff(agg, folder, "quality_vs_peak_memory", "Quality vs peak training memory",
                     f"Task quality against peak memory of the training phase ({METRICS['peak_mem_bytes'].help}); "
                     "dashed: Pareto front.", "peak_mem_bytes", "min", f"peak training memory ({unit})", xscale=scale)


def quality_vs_throughput(agg, trials, folder) -> Plot:
    return _tradeoff(agg, folder, "quality_vs_throughput", "Quality vs training throughput",
                     "Task quality against training throughput (tokens/s, warm-up steps excluded); "
                     "dashed: Pareto front.",
                     "train_tokens_per_s", "max", "training throughput (tokens/s)")
