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

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from bench.report.metrics import FAMILIES  # noqa: E402

_COLOURS = sns.color_palette("colorblind", 10)
PALETTE = {family: _COLOURS[i] for i, family in enumerate(FAMILIES)}
OTHER = (0.5, 0.5, 0.5)
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
    ncols = max(1, min(n, ncols, math.ceil(math.sqrt(n)) if n <= 4 else ncols))  # 4 panels: 2 × 2
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained")
    axes = axes.ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def family_legend(fig, families, extra: list | None = None, title: str = "family") -> None:
    present = [f for f in FAMILIES if f in set(families)] + sorted(set(families) - set(FAMILIES))
    handles = [Line2D([], [], marker="o", linestyle="", markersize=8, color=colour(f), label=f) for f in present]
    fig.legend(handles=handles + (extra or []), title=title, loc="upper left", bbox_to_anchor=(1.0, 0.93), frameon=False)


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
