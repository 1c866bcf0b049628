"""The answer on the report's first screen: per model × task, the methods not shown worse than the best quality and
what each costs against full fine-tuning (memory ×, speed ×, storage ×, latency ×).

Ratios are method / full fine-tuning of the same model × task, on the geometric means over seeds (a ratio is a ratio
of typical values, not pulled by one slow seed): memory 0.6× uses 40% less
peak training memory, speed 1.5× trains 50% more tokens per second, storage 0.01× stores 1% of the bytes per task,
latency 1.1× serves 10% slower (merged where the method merges). n/a where the sweep has no full fine-tuning trial.
Speed and latency ratios of trials not timed alone (something else ran beside them) are marked: figures, not
verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from bench.report import uncertainty
from bench.report.recommend import baseline_text, serving_latency
from bench.report.render import Cell, Table
from bench.report.tables import RATE_MARK, RATE_NOTE, interval_cell, rate_mark
from bench.results.metrics import NA, QUALITY_LONG, is_na, number

# (header, column of the aggregate) of each ratio against full fine-tuning: geometric means over seeds
RATIOS = [("memory ×", "peak_mem_bytes_gmean"), ("speed ×", "train_tokens_per_s_gmean"),
          ("storage ×", "checkpoint_bytes_gmean"), ("latency ×", "serving_latency_gmean")]
FULL_FAMILY = "full"
MAX_ROWS = 8  # a card lists at most this many methods of the top set; the rest are named in one line
TIMED = {"speed ×", "latency ×"}  # ratios that need trials timed alone
NOT_ALONE = "†"


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
    return Cell(number("quality", row["quality_mean"]) + ("" if ci.na else f" {ci.value}") + rate_mark(row))


def baseline_notes(group: pd.DataFrame) -> list[str]:
    """The task's trivial baseline (majority class; the lead sentence for generation) and the methods not shown above
    it; n/a where the sweep has none. Then the unstable methods, each with why."""
    share = group["baseline"].dropna() if "baseline" in group else pd.Series(dtype=float)
    notes = []
    if share.empty:
        if group["quality_metric"].isin(["accuracy", "f1_macro"]).any():
            notes.append("Majority-class baseline: n/a (these trials did not record the majority share).")
        elif group["quality_metric"].notna().any():
            notes.append("Trivial baseline: n/a (for generation: python -m bench.results.baselines <sweep> scores "
                         "the lead sentence).")
    else:
        at_baseline = group[group["at_baseline"].eq(True)]
        notes.append(f"{baseline_text(group)[0].upper()}{baseline_text(group)[1:]}: "
                     + ("not shown above it: " + ", ".join(at_baseline["label"]) + "." if len(at_baseline)
                        else "every method is shown above it."))
    unstable = uncertainty.unstable_names(group)
    if unstable:
        notes.append(f"Unstable, left out of the top set, never recommended nor on a front: {unstable}. Its mean "
                     "over seeds hides a failed or outlying run.")
    return notes


def _timed_alone(group: pd.DataFrame) -> pd.Series:
    """True where every trial of the row was timed alone (`timed_alone_all` from aggregate)."""
    return group.get("timed_alone_all", pd.Series(False, index=group.index)).eq(True)


def top_line(tied: pd.DataFrame, seeds: int) -> str:
    """The top set in words: never "best" or "clear of the rest", and with fewer than three seeds, why not."""
    line = "Not shown worse than the best: " + ", ".join(tied["label"]) + (" (the only one)." if len(tied) == 1
                                                                            else ".")
    if seeds < uncertainty.MIN_SEEDS:
        line += (f" {seeds} seed(s): the spread between training runs is "
                 f"{'not measured' if seeds == 1 else 'barely measured'}, so these are not separable from the rest "
                 "either.")
    return line


def card(group: pd.DataFrame) -> Card:
    """One model × task: the methods not shown worse than the best, as a small table of ratios against full
    fine-tuning."""
    group = group.assign(serving_latency_ms=serving_latency(group),
                         serving_latency_gmean=serving_latency(group, "gmean"))
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
    lines.append(top_line(tied, int(tied["n_seeds"].min())))
    worse = group[group.get("shown_worse", pd.Series(None, index=group.index)).map(
        lambda v: isinstance(v, str) and v != "")]
    if len(worse):
        lines.append("Shown worse than another method: "
                     + ", ".join(f"{r['label']} ({r['shown_worse']})" for _, r in worse.iterrows()) + ".")
    notes += baseline_notes(group)
    rows, marked = [], False
    for _, row in tied.head(MAX_ROWS).iterrows():
        cells = [Cell(row["label"]), _quality_cell(row)]
        for header, column in RATIOS:
            reference = full[column].mean() if len(full) else float("nan")
            cell = Cell(ratio_text(row[column] / reference if reference else float("nan")))
            alone = bool(_timed_alone(group.loc[[row.name]]).iloc[0]) and bool(_timed_alone(full).all())
            if header in TIMED and not cell.value == NA and not alone:
                cell.note, marked = NOT_ALONE, True
            cells.append(cell)
        rows.append(cells)
    if len(tied) > MAX_ROWS:
        notes.insert(0, f"{len(tied) - MAX_ROWS} more in the set: " + ", ".join(tied["label"].iloc[MAX_ROWS:]) + ".")
    if any(RATE_MARK in cells[1].value for cells in rows):
        notes.append(RATE_NOTE)
    if marked:
        notes.append(f"{NOT_ALONE} not timed alone: these trials ran beside other work, so their speed and latency "
                     "ratios are figures, not verdicts.")
    if full.empty:
        notes.append("No full fine-tuning trial in this model × task: ratios n/a.")
    frame = tied[["model", "task", "label", "quality_mean"]]
    table = Table(f"answer_{model}_{task}", title, ["method", "quality [95% CI]", *[h for h, _ in RATIOS]], rows,
                  frame, text_columns=2)
    return Card(title, lines, table, notes)


def cards(agg: pd.DataFrame) -> list[Card]:
    return [card(group) for _, group in agg.groupby(["model", "task"], sort=False)]


LEGEND = ("×: against full fine-tuning of the same model and task: peak training memory, training speed (tokens/s; "
          "above 1× is faster), storage per task, serving latency (merged where the method merges). Not shown worse "
          "than the best: multiple comparisons with the best (every method against every other, alpha 0.05 over "
          "the set), so the set holds the best method with 95% confidence and its members are not ranked among "
          "themselves; an unstable method is never in it (see Uncertainty).")
