"""Learning vs forgetting over training: each method's path through its checkpoints, one panel per model × task.

Trials run with `train.eval_every` keep a curve in their items.json: at each checkpoint, validation quality and the
forgetting probe's relative loss. The forgetting plot shows where training ended; this one shows how a method got
there, so "forgets less" can be told apart from "learned less so far". Seeds are averaged per step (a mean line
reads better than overlapping seed lines, and the seeds of one config share their checkpoint steps).
"""

from __future__ import annotations

import pandas as pd

from bench.report.plots.style import Plot, colour, family_legend, grid, na_note, place_labels, save
from bench.report.plots.tradeoffs import quality_label

NAME = "learning_vs_forgetting"
TITLE = "Learning vs forgetting over training"
# methods of one family share a colour; the line style tells them apart within a panel
STYLES = ["-", "--", ":", "-."]


def curve_points(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per checkpoint of every finished trial that recorded a curve (empty where none did, e.g. a report
    built from trials.csv alone: the curves live in the trial folders)."""
    columns = ["model", "task", "label", "family", "seed", "quality_metric", "forgetting_probe"]
    if "curve" not in trials:
        return pd.DataFrame()
    rows = [{**{c: trial[c] for c in columns}, **point}
            for _, trial in trials[trials["status"].eq("ok") & trials["curve"].notna()].iterrows()
            for point in trial["curve"] if isinstance(point, dict)]
    return pd.DataFrame(rows)


def seed_means(points: pd.DataFrame) -> pd.DataFrame:
    """Per model × task × method × step: mean validation quality and forgetting over seeds, and the seed count."""
    for column in ("step", "val_quality", "forgetting"):
        points[column] = pd.to_numeric(points[column], errors="coerce")
    keys = ["model", "task", "label", "family", "step"]
    return (points.groupby(keys, sort=False, dropna=False)
            .agg(val_quality=("val_quality", "mean"), forgetting=("forgetting", "mean"), seeds=("seed", "nunique"))
            .reset_index().sort_values(keys[:3] + ["step"], kind="stable"))


def _draw(ax, rows: pd.DataFrame) -> None:
    """One line per method through its checkpoints, its last point larger and labelled with the method and step."""
    drawn = rows.dropna(subset=["val_quality", "forgetting"])
    seen: dict[str, int] = {}
    ends = []
    for label, line in drawn.groupby("label", sort=False):
        family = line["family"].iloc[0]
        style = STYLES[seen.get(family, 0) % len(STYLES)]
        seen[family] = seen.get(family, 0) + 1
        ax.plot(line["forgetting"], line["val_quality"], style, marker="o", markersize=4, linewidth=1.6,
                color=colour(family), zorder=3)
        last = line.iloc[-1]
        ax.plot(last["forgetting"], last["val_quality"], "o", markersize=8, color=colour(family), zorder=3)
        ends.append((last["forgetting"], last["val_quality"], f"{label} (step {int(last['step'])})"))
    ax.axvline(0, color="0.6", linewidth=0.8, zorder=1)  # 0: the probe scores as before training
    if ends:
        xs, ys, labels = zip(*ends)
        place_labels(ax, xs, ys, labels)
    # a method whose checkpoints have no forgetting (no probe fits) cannot be placed: named, never drawn at 0
    na_note(ax, sorted(set(rows["label"]) - set(drawn["label"])))


def _panels(means: pd.DataFrame, agg: pd.DataFrame):
    """(title, rows, trial rows) per model × task that has a curve, in the report's panel order."""
    order = list(dict.fromkeys(zip(agg["model"], agg["task"])))
    keys = sorted(means.groupby(["model", "task"], sort=False).groups,
                  key=lambda k: order.index(k) if k in order else len(order))
    for model, task in keys:
        yield f"{model} / {task}", means[(means["model"] == model) & (means["task"] == task)]


def learning_vs_forgetting(agg, trials, folder) -> list[Plot]:
    """The plot, or nothing where no trial recorded a curve (curves are opt-in, so their absence is no gap)."""
    points = curve_points(trials)
    if points.empty:
        return []
    means = seed_means(points)
    groups = list(_panels(means, agg))
    fig, axes = grid(len(groups))
    for ax, (panel, rows) in zip(axes, groups):
        _draw(ax, rows)
        context = points[(points["model"] == rows["model"].iloc[0]) & (points["task"] == rows["task"].iloc[0])]
        probe = context["forgetting_probe"].dropna()
        ax.set_title(panel)
        ax.set_xlabel("forgetting (relative probe loss" + (f", {probe.iloc[0]})" if len(probe) else ")"))
        ax.set_ylabel("validation " + quality_label(context))
    family_legend(fig, means["family"])
    seeds = f"{means['seeds'].min()}–{means['seeds'].max()}" if means["seeds"].nunique() > 1 else means["seeds"].iloc[0]
    caption = ("How each method moves between learning and forgetting as it trains (train.eval_every): validation "
               "quality (up is better; the validation split, not the test split of the other plots) against "
               "forgetting (relative loss of a probe the task never trained on, left is better; 0: nothing "
               "forgotten) at each checkpoint, one line per method from its first checkpoint to its last (the "
               f"larger, labelled point); mean over seeds at each step ({seeds} seed(s)).")
    return [Plot(NAME, TITLE, caption, save(fig, folder, NAME, TITLE))]
