"""Which methods, for this model, task and budget: those tied at the top of quality within budget, and the
Pareto-optimal set, never a single winner picked from a difference smaller than the noise.

Budgets are on the aggregated means: peak training memory, checkpoint bytes per task, quality, serving latency
(the merged latency where the method merges, else the unmerged one), throughput, forgetting, trainable fraction.
A method whose budgeted metric is n/a does not fit (it cannot be shown to). Without a budget, every method fits.
The top of quality within budget is the set of methods not shown worse than the best (uncertainty.decide over the
finished trials: multiple comparisons with the best, paired over items where per-item scores exist, else on the
intervals); a method not shown above the task's trivial baseline is never recommended, nor an unstable one (a seed
at that baseline, or far from its other seeds), however well its other seeds did; an unstable method is never on the
Pareto front either. The Pareto set is over quality (max), peak memory, checkpoint size
and serving latency (min), among the stable methods within budget, with the quality of every method in the top set
levelled to the top's: such a method is only beaten on cost, never on a quality gap the data cannot show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import ClassVar

import pandas as pd

from bench.report import uncertainty
from bench.report.aggregate import seed_ties
from bench.report.pareto import pareto_mask
from bench.report.render import Cell, Table
from bench.results.metrics import NA, human_bytes, is_na, number

UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4,
         "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
         "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}
PARETO_OBJECTIVES = {"quality_level": "max", "peak_mem_bytes_mean": "min", "checkpoint_bytes_mean": "min",
                     "serving_latency_ms": "min"}


def parse_size(text: str | float) -> float:
    """'8GiB', '50MB', '512M' (bare K/M/G are binary, like `free -h`), or a plain number of bytes."""
    if isinstance(text, (int, float)):
        return float(text)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    if not match or match.group(2).lower() not in UNITS:
        raise ValueError(f"size {text!r}: expected a number with a unit such as 8GiB, 50MB, 512M")
    return float(match.group(1)) * UNITS[match.group(2).lower()]


@dataclass
class Budget:
    # (column of the aggregate, "max" means an upper bound, label for the text)
    max_memory: float | None = None  # bytes of peak training memory
    max_storage: float | None = None  # bytes of checkpoint per task
    min_quality: float | None = None  # the task's primary metric, e.g. 0.8 accuracy
    max_latency_ms: float | None = None  # serving latency p50
    min_throughput: float | None = None  # training tokens/s
    max_forgetting: float | None = None  # relative loss of the forgetting probe
    max_trainable_fraction: float | None = None  # 0.01 = 1%

    LIMITS: ClassVar[dict] = {  # field -> (column, bound, label, how to print the limit)
        "max_memory": ("peak_mem_bytes_mean", "max", "peak memory", lambda v: human_bytes(v, 2)),
        "max_storage": ("checkpoint_bytes_mean", "max", "checkpoint", lambda v: human_bytes(v, 2)),
        "min_quality": ("quality_mean", "min", "quality", lambda v: f"{v:.3f}"),
        "max_latency_ms": ("serving_latency_ms", "max", "latency", lambda v: f"{v:,.1f} ms"),
        "min_throughput": ("train_tokens_per_s_mean", "min", "throughput", lambda v: f"{v:,.1f} tokens/s"),
        "max_forgetting": ("forgetting_mean", "max", "forgetting", lambda v: f"{v:+.3f}"),
        "max_trainable_fraction": ("trainable_fraction_mean", "max", "trainable", lambda v: f"{100 * v:.3g}%"),
    }

    def active(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                column, bound, label, show = self.LIMITS[f.name]
                yield column, bound, label, show, value

    def describe(self) -> str:
        parts = [f"{label} {'≤' if bound == 'max' else '≥'} {show(value)}"
                 for _, bound, label, show, value in self.active()]
        if not parts:
            return "no limits (set them with --max-memory, --max-storage, --min-quality, ...)"
        return ", ".join(parts)


def serving_latency(agg: pd.DataFrame, stat: str = "mean") -> pd.Series:
    """Latency the method serves at: merged where it merges (and that is faster), else unmerged (`stat`: the
    aggregate's mean or gmean)."""
    columns = [f"latency_ms_p50_{stat}", f"latency_ms_p50_merged_{stat}"]
    if not all(c in agg for c in columns):
        return pd.Series(float("nan"), index=agg.index)
    return agg[columns].min(axis=1, skipna=True)


def violations(row: pd.Series, budget: Budget) -> list[str]:
    out = []
    for column, bound, label, show, limit in budget.active():
        value = row[column]
        if is_na(value):
            out.append(f"{label} n/a")
        elif (bound == "max" and value > limit) or (bound == "min" and value < limit):
            out.append(f"{label} {show(value)} {'>' if bound == 'max' else '<'} {show(limit)}")
    return out


def _top(group: pd.DataFrame, trials: pd.DataFrame | None) -> tuple[list[str], list[str], dict, str]:
    """(labels not shown worse than the best quality, labels not shown above the trivial baseline, unstable labels
    -> why, how it was decided) among `group`."""
    if trials is not None:
        rows = trials[trials["status"].eq("ok") & trials["model"].eq(group["model"].iloc[0])
                      & trials["task"].eq(group["task"].iloc[0]) & trials["label"].isin(group["label"])
                      & trials["quality"].notna()]
        if rows.empty:
            return [], [], {}, ""
        decision = uncertainty.decide(rows, "quality", True, "quality_items")
        if decision.ties is None:
            return [], decision.at_baseline, decision.unstable, "undecided"
        return decision.ties.tied, decision.at_baseline, decision.unstable, decision.ties.how
    quality = group[group["quality_mean"].notna()]
    if quality.empty:
        return [], [], {}, ""
    tied = quality.loc[seed_ties(quality, "quality", True), "label"]
    return list(tied), [], {}, "spread over seeds"


def recommend(agg: pd.DataFrame, budget: Budget, trials: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per model × task: fits, why not, tied at the top within budget (`recommended`, the top first), not
    distinguishable from the majority baseline, Pareto-optimal within budget. `trials` gives the paired tests over
    items; without it the spread over seeds decides."""
    frame = agg.copy().assign(serving_latency_ms=serving_latency(agg))  # copy: one block per dtype
    frame["why_not"] = [violations(r, budget) for _, r in frame.iterrows()]
    frame["fits"] = frame["why_not"].map(len) == 0
    frame["pareto"] = False
    frame["recommended"] = False
    frame["at_baseline"] = False
    frame["unstable"] = ""
    frame["quality_level"] = frame["quality_mean"]
    frame["decided_by"] = ""
    for _, group in frame.groupby(["model", "task"], sort=False):
        fitting = group[group["fits"]]
        if fitting.empty:
            continue
        tied, at_baseline, unstable, how = _top(fitting, trials)
        frame.loc[fitting.index, "decided_by"] = how
        frame.loc[fitting.index, "at_baseline"] = fitting["label"].isin(at_baseline)
        frame.loc[fitting.index, "unstable"] = [unstable.get(label, "") for label in fitting["label"]]
        chosen = fitting["label"].isin(tied) & ~fitting["label"].isin(at_baseline) & ~fitting["label"].isin(unstable)
        frame.loc[fitting.index, "recommended"] = chosen
        if chosen.any():  # an unstable method keeps its own mean: its failed seed is part of its quality
            frame.loc[fitting.index[chosen], "quality_level"] = fitting["quality_mean"].max()
        stable = fitting.index[~fitting["label"].isin(unstable)]
        frame.loc[stable, "pareto"] = pareto_mask(frame.loc[stable], PARETO_OBJECTIVES)
    return frame


def _names(rows: pd.DataFrame) -> str:
    return ", ".join(rows.sort_values("quality_mean", ascending=False)["label"])


def summary(frame: pd.DataFrame, budget: Budget) -> list[str]:
    """One sentence per model × task."""
    lines = []
    for (model, task), group in frame.groupby(["model", "task"], sort=False):
        fitting = group[group["fits"]]
        best = group[group["recommended"]]
        pareto = ", ".join(group.loc[group["pareto"], "label"]) or "none"
        at_baseline = group[group["at_baseline"].eq(True)]
        if fitting.empty:
            lines.append(f"{model} / {task}: no method fits the budget ({budget.describe()}).")
            continue
        metric = best["quality_metric"].iloc[0] if len(best) else fitting["quality_metric"].iloc[0] or "quality"
        if best.empty:
            top = ("quality cannot be ranked: no interval over items" if fitting["decided_by"].eq("undecided").any()
                   else "no stable method within budget is shown above the trivial baseline")
        else:
            low, high = best["quality_mean"].min(), best["quality_mean"].max()
            spread = (number("quality", high) if len(best) == 1
                      else f"{number('quality', low)}–{number('quality', high)}")
            name = _names(best)
            memory = best["peak_mem_bytes_mean"]
            cheapest = best.loc[memory.idxmin()] if memory.notna().any() else None
            seeds = int(best["n_seeds"].min()) if "n_seeds" in best else 0
            few = (f" ({seeds} seed(s): training noise not measured, so not separable from the rest)"
                   if 0 < seeds < uncertainty.MIN_SEEDS else "")
            top = f"not shown worse than the best quality within budget: {name} ({metric} {spread}){few}"
            if cheapest is not None and len(best) > 1:
                top += (f"; of these the least peak memory: {cheapest['label']} "
                        f"({human_bytes(cheapest['peak_mem_bytes_mean'])})")
        line = f"{model} / {task}: {top}. Pareto-optimal within budget: {pareto}."
        if len(at_baseline):
            line += f" Not shown above the {baseline_text(group)}: {_names(at_baseline)}."
        unstable = uncertainty.unstable_names(group)
        if unstable:
            line += f" Unstable, never recommended nor on the front: {unstable}."
        lines.append(line)
    return lines


def baseline_text(group: pd.DataFrame) -> str:
    """"majority-class baseline (0.239)", "lead-sentence baseline (0.185)", or "trivial baseline" where unknown."""
    base = group["baseline"].dropna() if "baseline" in group else pd.Series(dtype=float)
    kind = group["baseline_kind"].dropna() if "baseline_kind" in group else pd.Series(dtype=object)
    name = f"{kind.iloc[0]} baseline" if len(kind) else "trivial baseline"
    return f"{name} ({number('quality', base.iloc[0])})" if len(base) else name


def _recommended_text(row: pd.Series) -> str:
    if row["recommended"]:
        return "not shown worse than the best"
    return f"no: unstable ({row['unstable']})" if row["unstable"] else ""


def recommendation_table(frame: pd.DataFrame) -> Table:
    rows = []
    for _, r in frame.iterrows():
        latency = r["serving_latency_ms"]
        quality = Cell(number("quality", r["quality_mean"]), best=bool(r["recommended"]),
                       note=" ≈" if r["at_baseline"] is True else "")
        rows.append([Cell(r["model"]), Cell(r["task"]), Cell(r["label"]), Cell(r["family"]), quality,
                     Cell(human_bytes(r["peak_mem_bytes_mean"])), Cell(human_bytes(r["checkpoint_bytes_mean"])),
                     Cell(NA if is_na(latency) else f"{latency:,.1f}"),
                     Cell("yes" if r["fits"] else "no: " + "; ".join(r["why_not"])),
                     Cell("yes" if r["pareto"] else ""), Cell(_recommended_text(r))])
    keep = ["model", "task", "family", "method", "label", "quality_mean", "peak_mem_bytes_mean",
            "checkpoint_bytes_mean", "serving_latency_ms", "fits", "pareto", "recommended", "at_baseline", "unstable",
            "decided_by"]
    raw = frame[keep].assign(why_not=frame["why_not"].map("; ".join))
    return Table("recommendation", "Recommendation: methods within budget, tied at the top, Pareto-optimal set",
                 ["model", "task", "method", "family", "quality", "peak memory", "checkpoint", "latency (ms)",
                  "within budget", "Pareto-optimal", "recommended"], rows, raw, group_columns=2, text_columns=4,
                 notes=[("recommended: the methods within budget not shown worse than the best quality within budget "
                        "(bold; multiple comparisons with the best), never one not shown above the task's trivial "
                        "baseline (≈), nor an unstable one (a seed at that baseline or far from its other seeds; "
                        "never on the Pareto front either). "
                        "Pareto-optimal: no other method within budget is at least as good on quality (methods not "
                        "shown worse than the best count as equal), peak memory, checkpoint size and serving latency "
                        "and better on one. Serving latency: merged where the method merges, else unmerged.")])
