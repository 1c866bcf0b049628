"""Shared look of every plot: family colours, panel grids, byte units, saving PNG + SVG.

Methods are coloured by family with one fixed palette, so a family has the same colour in every plot of every
report; the method name is written next to its point or under its bar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display: safe on servers and in tests

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from bench.common.families import FAMILIES, ordered_families

_COLOURS = sns.color_palette("colorblind", 10)
PALETTE = {family: _COLOURS[i] for i, family in enumerate(FAMILIES)}
OTHER = (0.5, 0.5, 0.5)
# metrics spread over orders of magnitude between methods (a bias-only method vs a full copy): log axes
LOG_SCALE = {"trainable_params", "trainable_fraction", "checkpoint_bytes", "train_flops"}
DPI = 150


class NotApplicable(Exception):
    """The sweep has nothing this plot can show (e.g. one model size for a scaling plot); the message says why."""


@dataclass
class Plot:
    name: str
    title: str
    caption: str
    files: list[Path] = field(default_factory=list)


def colour(family: str):
    return PALETTE.get(family, OTHER)


def theme() -> None:
    # SVG text stays text: smaller files, searchable and editable in a paper's figure
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.1, rc={"svg.fonttype": "none"})


def panels(agg: pd.DataFrame):
    """(title, rows) per model × task, models smallest first (agg is already ordered)."""
    for (model, task), rows in agg.groupby(["model", "task"], sort=False):
        yield f"{model} / {task}", rows


def grid(n: int, width: float = 5.2, height: float = 4.2, ncols: int = 3):
    ncols = max(1, min(n, 2 if n == 4 else ncols))  # up to 3 panels in one row (a page-wide strip), 4 as 2 × 2
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained")
    axes = axes.ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def bar_grid(agg: pd.DataFrame, per_bar: float = 0.55):
    """Panels wide enough for one bar group per method, capped so 25 methods still fit a page."""
    most = int(agg.groupby(["model", "task"]).size().max())
    width = min(14.0, max(5.2, per_bar * most + 2))
    return grid(agg.groupby(["model", "task"]).ngroups, width=width, height=4.2 if most <= 10 else 5.2,
                ncols=1 if most > 10 else 3)


def rotate_ticks(ax, x, labels) -> None:
    ax.set_xticks(x, labels, rotation=30 if len(labels) <= 10 else 55, ha="right", rotation_mode="anchor")


def colour_ticks(ax, rows) -> None:
    """Method names under bars in their family's colour: the family legend then reads for the ticks too."""
    for tick, family in zip(ax.get_xticklabels(), rows["family"]):
        tick.set_color(colour(family))
        tick.set_fontweight("bold")


def bar_panels(agg: pd.DataFrame, column: str, ylabel: str, draw):
    """One bar panel per model × task over the methods that have `column` (a `<metric>_mean`): `draw(ax, rows, x)`
    draws the bars; the method ticks (coloured by family), title, y label and the n/a note are the same for every
    bar plot. Returns the figure."""
    fig, axes = bar_grid(agg)
    for ax, (panel, rows) in zip(axes, panels(agg)):
        shown = rows[rows[column].notna()]
        x = np.arange(len(shown))
        draw(ax, shown, x)
        rotate_ticks(ax, x, marked_labels(shown))
        colour_ticks(ax, shown)
        ax.set_title(panel)
        ax.set_ylabel(ylabel)
        na_note(ax, rows.loc[rows[column].isna(), "label"])
    return fig


def marked_labels(rows: pd.DataFrame) -> list[str]:
    """Method names, with " (unstable)" after a method whose seeds disagree (uncertainty.unstable_seeds)."""
    unstable = rows["unstable"] if "unstable" in rows else pd.Series(None, index=rows.index)
    return [f"{label} (unstable)" if isinstance(why, str) and why else str(label)
            for label, why in zip(rows["label"], unstable)]


def family_legend(fig, families, extra: list | None = None, title: str = "family") -> None:
    present = ordered_families(families)
    handles = [Line2D([], [], marker="o", linestyle="", markersize=8, color=colour(f), label=f) for f in present]
    fig.legend(handles=handles + (extra or []), title=title, loc="upper left", bbox_to_anchor=(1.0, 0.93),
               frameon=False)


def bytes_unit(values) -> tuple[float, str]:
    """MiB, or GiB where the largest value passes 8 GiB."""
    top = pd.Series(values, dtype=float).max()
    return (1024**3, "GiB") if not pd.isna(top) and top >= 8 * 1024**3 else (1024**2, "MiB")


def na_note(ax, labels) -> None:
    """Name what could not be drawn because a value is missing: shown as n/a, never as a zero."""
    labels = list(labels)
    if labels:
        ax.text(0.01, 0.01, "n/a: " + ", ".join(labels), transform=ax.transAxes, fontsize=8, color="0.35",
                ha="left", va="bottom", wrap=True)


def save(fig, folder: Path, name: str, title: str) -> list[Path]:
    fig.suptitle(title, fontsize=13)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.svg"]
    fig.savefig(paths[0], dpi=DPI, bbox_inches="tight", pad_inches=0.15)
    fig.savefig(paths[1], bbox_inches="tight", pad_inches=0.15)
    plt.close(fig)
    return paths


# (dx, dy) in points from the point, then alignment: near first, farther ones get a leader line
_OFFSETS = [(5, 3), (5, -3), (-5, 3), (-5, -3), (6, 12), (6, -12), (-6, 12), (-6, -12), (0, 22), (0, -22),
            (12, 24), (-12, -24), (12, -24), (-12, 24), (0, 34), (0, -34)]


def place_labels(ax, xs, ys, labels, fontsize: float = 8) -> None:
    """Write each label next to its point where it overlaps no other label or point (greedy, first fit).

    Own code because matplotlib has no label placement and adjustText is not a dependency. Works in axes fractions
    so it holds under any layout; text size is estimated from the font size (0.6 em per character).
    """
    ax.autoscale_view()
    to_axes = ax.transData + ax.transAxes.inverted()
    box = ax.get_position()
    point_w = 1 / (72 * box.width * ax.figure.get_figwidth())  # one typographic point in axes fraction
    point_h = 1 / (72 * box.height * ax.figure.get_figheight())
    anchors = [tuple(to_axes.transform((x, y))) for x, y in zip(xs, ys)]
    radius_w, radius_h = 4 * point_w, 4 * point_h
    taken = [(ax_ - radius_w, ay - radius_h, ax_ + radius_w, ay + radius_h) for ax_, ay in anchors]
    for (px, py), (x, y), label in sorted(zip(anchors, zip(xs, ys), labels), key=lambda t: (-t[0][1], t[0][0])):
        width, height = 0.6 * fontsize * len(label) * point_w, 1.1 * fontsize * point_h
        choice = None
        for dx, dy in _OFFSETS:
            x0 = px + dx * point_w - (width if dx < 0 else width / 2 if dx == 0 else 0)
            y0 = py + dy * point_h - (height if dy < 0 else 0)
            cand = (x0, y0, x0 + width, y0 + height)
            inside = cand[0] >= -0.02 and cand[2] <= 1.02 and cand[1] >= -0.02 and cand[3] <= 1.02
            if inside and not any(_overlap(cand, t) for t in taken):
                choice = (dx, dy, cand)
                break
        dx, dy, cand = choice or (5, 3, (px, py, px + width, py + height))
        taken.append(cand)
        far = abs(dy) > 5
        ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize, zorder=4,
                    ha="right" if dx < 0 else "center" if dx == 0 else "left", va="top" if dy < 0 else "bottom",
                    arrowprops=({"arrowstyle": "-", "color": "0.6", "linewidth": 0.6, "shrinkA": 0, "shrinkB": 3}
                                if far else None))


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
