"""Which method, for this model, task and budget: the best quality within budget, and the Pareto-optimal set.

Budgets are on the aggregated means: peak training memory, checkpoint bytes per task, quality, serving latency
(the merged latency where the method merges, else the unmerged one), throughput, forgetting, trainable fraction.
A method whose budgeted metric is n/a does not fit (it cannot be shown to). Without a budget, every method fits.
The Pareto set is over quality (max), peak memory, checkpoint size and serving latency (min), among the methods
within budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

import pandas as pd

from bench.report.metrics import NA, human_bytes, is_na, number
from bench.report.pareto import pareto_mask
from bench.report.render import Cell, Table

UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4,
         "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
         "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}
PARETO_OBJECTIVES = {"quality_mean": "max", "peak_mem_bytes_mean": "min", "checkpoint_bytes_mean": "min",
                     "serving_latency_ms": "min"}


def parse_size(text: str | float | int) -> float:
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

    LIMITS = {  # field -> (column, bound, label, how to print the limit)
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
        return ", ".join(parts) if parts else "no limits (set them with --max-memory, --max-storage, --min-quality, ...)"


def serving_latency(agg: pd.DataFrame) -> pd.Series:
    """Latency the method serves at: merged where it merges (and that is faster), else unmerged."""
    return agg[["latency_ms_p50_mean", "latency_ms_p50_merged_mean"]].min(axis=1, skipna=True)


def violations(row: pd.Series, budget: Budget) -> list[str]:
    out = []
    for column, bound, label, show, limit in budget.active():
        value = row[column]
        if is_na(value):
            out.append(f"{label} n/a")
        elif (bound == "max" and value > limit) or (bound == "min" and value < limit):
            out.append(f"{label} {show(value)} {'>' if bound == 'max' else '<'} {show(limit)}")
    return out


def recommend(agg: pd.DataFrame, budget: Budget) -> pd.DataFrame:
    """Per model × task: fits, why not, Pareto-optimal within budget, and the recommended (best-quality) method."""
    frame = agg.assign(serving_latency_ms=serving_latency(agg))
    frame["why_not"] = [violations(r, budget) for _, r in frame.iterrows()]
    frame["fits"] = frame["why_not"].map(len) == 0
    frame["pareto"] = False
    frame["recommended"] = False
    for _, group in frame.groupby(["model", "task"], sort=False):
        fitting = group[group["fits"]]
        frame.loc[fitting.index, "pareto"] = pareto_mask(fitting, PARETO_OBJECTIVES)
        quality = fitting["quality_mean"].dropna()
        if len(quality):
            frame.loc[quality.index[quality == quality.max()], "recommended"] = True
    return frame


def summary(frame: pd.DataFrame, budget: Budget) -> list[str]:
    """One sentence per model × task."""
    lines = []
    for (model, task), group in frame.groupby(["model", "task"], sort=False):
        best = group[group["recommended"]]
        pareto = ", ".join(group.loc[group["pareto"], "label"]) or "none"
        if best.empty:
            lines.append(f"{model} / {task}: no method fits the budget ({budget.describe()}).")
            continue
        r = best.iloc[0]
        metric = r["quality_metric"] or "quality"
        lines.append(f"{model} / {task}: best quality within budget: {' = '.join(best['label'])} ({metric} "
                     f"{number('quality', r['quality_mean'])}, peak memory {human_bytes(r['peak_mem_bytes_mean'])}, "
                     f"checkpoint {human_bytes(r['checkpoint_bytes_mean'])}). Pareto-optimal within budget: {pareto}.")
    return lines


def recommendation_table(frame: pd.DataFrame) -> Table:
    rows = []
    for _, r in frame.iterrows():
        latency = r["serving_latency_ms"]
        rows.append([Cell(r["model"]), Cell(r["task"]), Cell(r["label"]), Cell(r["family"]),
                     Cell(number("quality", r["quality_mean"]), best=bool(r["recommended"])),
                     Cell(human_bytes(r["peak_mem_bytes_mean"])), Cell(human_bytes(r["checkpoint_bytes_mean"])),
                     Cell(NA if is_na(latency) else f"{latency:,.1f}"),
                     Cell("yes" if r["fits"] else "no: " + "; ".join(r["why_not"])),
                     Cell("yes" if r["pareto"] else ""), Cell("best" if r["recommended"] else "")])
    keep = ["model", "task", "family", "method", "label", "quality_mean", "peak_mem_bytes_mean", "checkpoint_bytes_mean",
            "serving_latency_ms", "fits", "pareto", "recommended"]
    raw = frame[keep].assign(why_not=frame["why_not"].map("; ".join))
    return Table("recommendation", "Recommendation: methods within budget, Pareto-optimal set, best quality",
                 ["model", "task", "method", "family", "quality", "peak memory", "checkpoint", "latency (ms)",
                  "within budget", "Pareto-optimal", "recommended"], rows, raw, group_columns=2, text_columns=4,
                 notes=["Pareto-optimal: no other method within budget is at least as good on quality, peak memory, "
                        "checkpoint size and serving latency and better on one. Serving latency: merged where the "
                        "method merges, else unmerged."])
