"""The answer on the report's first screen: per model × task, the methods tied at the top of quality and what each
costs against full fine-tuning (memory ×, speed ×, storage ×, latency ×).

Ratios are method / full fine-tuning of the same model × task, on the means over seeds: memory 0.6× uses 40% less
peak training memory, speed 1.5× trains 50% more tokens per second, storage 0.01× stores 1% of the bytes per task,
latency 1.1× serves 10% slower (merged where the method merges). n/a where the sweep has no full fine-tuning trial.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from bench.report import uncertainty
from bench.report.recommend import serving_latency
from bench.report.render import Cell, Table
from bench.report.tables import interval_cell
from bench.results.metrics import NA, QUALITY_LONG, is_na, number

# (header, column of the aggregate) of each ratio against full fine-tuning
RATIOS = [("memory ×", "peak_mem_bytes_mean"), ("speed ×", "train_tokens_per_s_mean"),
          ("storage ×", "checkpoint_bytes_mean"), ("latency ×", "serving_latency_ms")]
FULL_FAMILY = "full"
MAX_ROWS = 8  # a card lists at most this many tied methods; the rest are named in one line


@dataclass
class Card:
    title: str
    lines: list[str]  # plain sentences under the title
    table: Table | None
    notes: list[str] = field(default_factory=list)


def ratio_text(value: float) -> str:
    if is_na(value):
        return NA
    return f"{value:.2g}×" if value < 0.1 else f"{value:.2f}×"


def _quality_cell(row: pd.Series) -> Cell:
    """`0.970 [0.94, 0.99]`: the interval to two decimals keeps the card narrow; the tables carry three."""
    ci = interval_cell(row, digits=2)
    return Cell(number("quality", row["quality_mean"]) + ("" if ci.na else f" {ci.value}"))


def baseline_notes(group: pd.DataFrame) -> list[str]:
    """Classification: the majority-class share and the methods the data cannot tell from it; n/a where the
    trials did not record the share. Other tasks have no such baseline: nothing said."""
    if not group["quality_metric"].isin(["accuracy", "f1_macro"]).any():
        return []
    share = group["baseline"].dropna() if "baseline" in group else pd.Series(dtype=float)
    if share.empty:
        return ["Majority-class baseline: n/a (these trials did not record the majority share of the test split)."]
    at_baseline = group[group["at_baseline"].eq(True)]
    text = f"Majority-class baseline {number('quality', share.iloc[0])}: "
    notes = [text + ("not distinguishable from it: " + ", ".join(at_baseline["label"]) + "." if len(at_baseline)
                     else "every method is above it.")]
    unstable = uncertainty.unstable_names(group)
    if unstable:
        notes.append(f"Unstable, a seed at that baseline: {unstable}; its mean hides a failed seed.")
    return notes


def card(group: pd.DataFrame) -> Card:
    """One model × task: its tie set as a small table of ratios against full fine-tuning."""
    group = group.assign(serving_latency_ms=serving_latency(group))
    model, task = group["model"].iloc[0], group["task"].iloc[0]
    metric = group["quality_metric"].dropna()
    metric = QUALITY_LONG.get(metric.iloc[0], metric.iloc[0]) if len(metric) else "quality"
    items = group["n_eval"].max() if "n_eval" in group else float("nan")
    seeds = group["n_seeds"]
    seed_text = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}–{seeds.max()}"
    title = (f"{model} / {task}: {metric}, " + (f"n = {int(items)} items, " if not is_na(items) else "")
             + f"{seed_text} seed(s)")
    tied = group[group.get("quality_tied", pd.Series(False, index=group.index)).eq(True)]
    tied = tied.sort_values("quality_mean", ascending=False)
    full = group[group["family"] == FULL_FAMILY]
    lines, notes = [], []
    if tied.empty:
        lines.append("Top of quality: n/a: no interval over items, so no method can be called best "
                     "(see Uncertainty).")
        return Card(title, lines, None, baseline_notes(group))
    lines.append(("Tied at the top: " if len(tied) > 1 else "Best, clear of the rest: ")
                 + ", ".join(tied["label"]) + ".")
    notes += baseline_notes(group)
    rows = []
    for _, row in tied.head(MAX_ROWS).iterrows():
        cells = [Cell(row["label"]), _quality_cell(row)]
        for _, column in RATIOS:
            reference = full[column].mean() if len(full) else float("nan")
            cells.append(Cell(ratio_text(row[column] / reference if reference else float("nan"))))
        rows.append(cells)
    if len(tied) > MAX_ROWS:
        notes.insert(0, f"{len(tied) - MAX_ROWS} more tied: " + ", ".join(tied["label"].iloc[MAX_ROWS:]) + ".")
    if full.empty:
        notes.append("No full fine-tuning trial in this model × task: ratios n/a.")
    frame = tied[["model", "task", "label", "quality_mean"]]
    table = Table(f"answer_{model}_{task}", title, ["method", "quality [95% CI]", *[h for h, _ in RATIOS]], rows,
                  frame, text_columns=2)
    return Card(title, lines, table, notes)


def cards(agg: pd.DataFrame) -> list[Card]:
    return [card(group) for _, group in agg.groupby(["model", "task"], sort=False)]


LEGEND = ("×: against full fine-tuning of the same model and task: peak training memory, training speed (tokens/s; "
          "above 1× is faster), storage per task, serving latency (merged where the method merges). Tied: not "
          "significantly worse than the top one (Holm, alpha 0.05), so not ranked among themselves (see Uncertainty).")
