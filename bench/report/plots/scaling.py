"""Scaling: each metric against model size, one line per method, one figure per task; and, for distributed trials,
peak memory per rank and the group's tokens/s against the number of processes, one figure per model and task.

Drawn from the trials themselves so seaborn averages over seeds and draws ± std bands. Model size needs at least two
model sizes; x is the base model's parameter count (the smallest total_params among its trials). Processes need at
least two process counts (a one-process trial counts as 1 and joins every distributed line of its method).
"""

from __future__ import annotations

import re

import pandas as pd
import seaborn as sns
from matplotlib.ticker import NullLocator

from bench.report.plots.style import (
    LOG_SCALE,
    NotApplicable,
    Plot,
    bytes_unit,
    colour,
    grid,
    save,
)
from bench.results.metrics import METRICS, human_params

# Quality first, then every cost with a direction that every trial carries (parameter counts: the fraction stands
# for them); all from the catalogue, so a new cost metric gets its panel.
PANELS = ["quality", *[c for c, m in METRICS.items()
                       if m.cost and m.required and m.better and m.kind != "params" and c != "quality"]]


def scaling(agg, trials, folder) -> list[Plot]:
    """Model-size figures and process figures, whichever the sweep can show."""
    plots, reasons = [], []
    for draw in (model_size, processes):
        try:
            plots += draw(agg, trials, folder)
        except NotApplicable as reason:
            reasons.append(str(reason))
    if not plots:
        raise NotApplicable("; ".join(reasons))
    return plots


PROCESS_PANELS = ("peak_mem_bytes", "train_tokens_per_s")  # peak_mem_bytes of a group: its largest rank's peak


def processes(agg, trials, folder) -> list[Plot]:
    ok = trials[trials["status"] == "ok"].copy()
    ok["processes"] = ok["world_size"].fillna(1) if "world_size" in ok else 1.0
    if ok["processes"].nunique() < 2:
        raise NotApplicable("every trial ran on one process count")
    kind = ok["distributed"].fillna("none") if "distributed" in ok else pd.Series("none", index=ok.index)
    ok["line"] = ok["method"] + " " + kind
    single = ok[kind == "none"]
    kinds = ok[kind != "none"].groupby("method")["line"].unique()
    # a one-process trial is the first point of each distributed line of its method
    joined = [single[single["method"] == method].assign(line=line) for method, lines in kinds.items() for line in lines]
    rows_all = pd.concat([ok[kind != "none"], *joined]) if joined else ok
    plots = []
    for (model, task), rows in rows_all.groupby(["model", "task"], sort=False):
        if rows["processes"].nunique() < 2:
            continue
        fig, axes = grid(len(PROCESS_PANELS), width=4.6, height=3.8)
        palette = {line: colour(family) for line, family in zip(rows["line"], rows["family"])}
        for i, (ax, metric) in enumerate(zip(axes, PROCESS_PANELS)):
            info = METRICS[metric]
            scale, unit = bytes_unit(rows[metric]) if info.kind == "bytes" else (1.0, info.unit)
            sns.lineplot(data=rows.assign(value=rows[metric] / scale), x="processes", y="value", hue="line",
                         style="line", palette=palette, markers=True, errorbar="sd", err_style="bars", ax=ax,
                         legend=i == 0)
            counts = sorted(rows["processes"].unique())
            ax.set_xticks(counts, [f"{c:g}" for c in counts])
            ax.set_xlabel("processes (world size)")
            ax.set_title("peak memory per rank (largest)" if metric == "peak_mem_bytes" else "throughput, whole group")
            ax.set_ylabel(f"{info.label} ({unit})")
        _legend_beside(fig, axes, "method, distribution")
        name = "scaling_processes_" + re.sub(r"[^A-Za-z0-9_.-]", "_", f"{model}_{task}")
        title = f"Scaling with processes: {model} / {task}"
        plots.append(Plot(name, title, "Peak memory of the rank that peaked highest, and training tokens/s of all "
                          "ranks together, against the number of processes; one line per method and distribution "
                          "(one-process trials start every line); error bars: ± std over seeds.",
                          save(fig, folder, name, title)))
    if not plots:
        raise NotApplicable("no model and task was run on more than one process count")
    return plots


def model_size(agg, trials, folder) -> list[Plot]:
    ok = trials[trials["status"] == "ok"].copy()
    ok["model_size"] = ok.groupby("model")["total_params"].transform("min")
    if ok["model_size"].nunique() < 2:
        raise NotApplicable("the sweep has one model size")
    palette = {label: colour(family) for label, family in zip(ok["label"], ok["family"])}
    order = list(dict.fromkeys(agg["label"]))
    plots = []
    tasks = list(dict.fromkeys(ok["task"]))
    for task in tasks:
        rows = ok[ok["task"] == task]
        if rows["model_size"].nunique() < 2:
            continue
        # forgetting is a recall loss on encoders and a perplexity rise on decoders: never one line across both
        mixed = rows["forgetting_probe"].dropna().nunique() > 1
        metrics = [m for m in PANELS if rows[m].notna().any() and not (m == "forgetting" and mixed)]
        fig, axes = grid(len(metrics), width=4.6, height=3.8, ncols=4)
        for i, (ax, metric) in enumerate(zip(axes, metrics)):
            _size_panel(ax, rows, metric, order, palette, legend=i == 0)
        _legend_beside(fig, axes, "method (colour: family)")
        name = "scaling" if len(tasks) == 1 else f"scaling_{re.sub(r'[^A-Za-z0-9_.-]', '_', task)}"
        title = f"Scaling with model size: {task}"
        caption = ("Each metric against the base model's parameter count (log scale), one line per method, coloured by "
                   "family; error bars: ± std over seeds."
                   + (" Forgetting left out: its probes differ between these models (a recall loss on an encoder, a "
                      "perplexity rise on a decoder), two constructs never compared." if mixed else ""))
        plots.append(Plot(name, title, caption, save(fig, folder, name, title)))
    if not plots:
        raise NotApplicable("no task was run on more than one model size")
    return plots


def _size_panel(ax, rows, metric: str, order, palette, legend: bool) -> None:
    """One metric against model size (log scale, ticked at the sizes run), a line per method."""
    info = METRICS[metric]
    scale, unit = (bytes_unit(rows[metric]) if info.kind == "bytes" else
                   (0.01, "%") if info.kind == "fraction" else (1.0, info.unit))
    data = rows.assign(value=rows[metric] / scale, size_m=rows["model_size"] / 1e6)
    sns.lineplot(data=data, x="size_m", y="value", hue="label", style="label", hue_order=order,
                 style_order=order, palette=palette, markers=True, dashes=False, errorbar="sd",
                 err_style="bars", ax=ax, legend=legend)
    ax.set_xscale("log")
    sizes = sorted(data["size_m"].unique())  # tick exactly the model sizes, labelled like 22.7M
    ax.set_xticks(sizes, [human_params(s * 1e6) for s in sizes])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.margins(x=0.1)
    if metric in LOG_SCALE:
        ax.set_yscale("log")
    names = rows["quality_metric"].dropna()
    metric_name = names.iloc[0] if metric == "quality" and len(names) else None
    ax.set_title(info.label + (f" ({metric_name})" if metric_name else ""))
    ax.set_xlabel("model size (parameters, log scale)")
    ax.set_ylabel(f"{info.label} ({unit})" if unit else info.label)


def _legend_beside(fig, axes, title: str) -> None:
    """The first panel's legend (the only one drawn) moved beside the grid, for all panels."""
    if axes and axes[0].get_legend():
        handles, labels = axes[0].get_legend_handles_labels()
        axes[0].get_legend().remove()
        fig.legend(handles, labels, title=title, loc="upper left", bbox_to_anchor=(1.0, 0.93), frameon=False)
