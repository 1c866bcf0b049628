"""Sweep folder -> reports/<sweep>/: tables (md, csv, tex), plots (png, svg), report.md and report.html.

    from bench.report.build import build_report
    build_report("results/quick")            # -> reports/quick/report.html
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from bench.report import page
from bench.report.aggregate import aggregate
from bench.report.load import load_trials
from bench.report.metrics import METRICS, QUALITY_METRICS, human_bytes, human_params, is_na, number
from bench.report.page import Block
from bench.report.plots import draw_all
from bench.report.recommend import Budget, recommend, recommendation_table, summary
from bench.report.render import write_table
from bench.report.tables import STORAGE_N, cost_table, failures_table, paper_table, storage_frame, storage_table


def sweep_name(source: Path) -> str:
    source = Path(source).resolve()
    return source.parent.name if source.is_file() else source.name


def _clear(folder: Path, patterns) -> None:
    """Drop this report's own earlier outputs so a rerun never links a stale plot."""
    for pattern in patterns:
        for path in folder.glob(pattern):
            path.unlink()


def key_figures(trials: pd.DataFrame, agg: pd.DataFrame, storage: pd.DataFrame, ns) -> list[str]:
    counts = trials["status"].value_counts()
    lines = [f"{len(trials)} trials: {counts.get('ok', 0)} finished, {counts.get('failed', 0)} failed, "
             f"{counts.get('skipped', 0)} skipped (failed and skipped ones are listed at the end)."]
    if agg.empty:
        return lines + ["No finished trial yet: nothing to compare."]
    sizes = agg.groupby("model", sort=False)["total_params_mean"].min()
    seeds = agg["n_seeds"]
    lines.append(f"Models: {', '.join(f'{m} ({human_params(s)} params)' for m, s in sizes.items())}; tasks: "
                 f"{', '.join(dict.fromkeys(agg['task']))}; {agg['label'].nunique()} methods in "
                 f"{agg['family'].nunique()} families; seeds per method: "
                 f"{seeds.min() if seeds.min() == seeds.max() else f'{seeds.min()}–{seeds.max()}'}.")
    for (model, task), rows in agg.groupby(["model", "task"], sort=False):
        parts = []
        full = rows[rows["family"] == "full"]
        full_mem = full["peak_mem_bytes_mean"].min() if len(full) else float("nan")

        def top(column, better):
            values = rows[f"{column}_mean"].dropna()
            return None if values.empty else rows.loc[values.idxmax() if better == "max" else values.idxmin()]

        if (r := top("quality", "max")) is not None:
            score = number("quality", r["quality_mean"])
            parts.append(f"best quality {r['label']} ({r['quality_metric'] or 'quality'} {score})")
        if (r := top("trainable_fraction", "min")) is not None:
            parts.append(f"fewest trainable parameters {r['label']} ({100 * r['trainable_fraction_mean']:.3g}%)")
        if (r := top("peak_mem_bytes", "min")) is not None:
            versus = f", full fine-tuning {human_bytes(full_mem)}" if not is_na(full_mem) else ""
            parts.append(f"lowest peak memory {r['label']} ({human_bytes(r['peak_mem_bytes_mean'])}{versus})")
        if (r := top("train_tokens_per_s", "max")) is not None:
            parts.append(f"fastest training {r['label']} ({r['train_tokens_per_s_mean']:,.0f} tokens/s)")
        lines.append(f"{model} / {task}: " + "; ".join(parts) + ".")
    if not storage.empty:
        n = ns[-1]
        for model, rows in storage.groupby("model", sort=False):
            full = rows[rows["family"] == "full"][f"n{n}_bytes"].min()
            peft = rows[rows["family"] != "full"].dropna(subset=[f"n{n}_bytes"])
            if peft.empty or is_na(full):
                continue
            best = peft.loc[peft[f"n{n}_bytes"].idxmin()]
            lines.append(f"{model}, storage for {n} tasks: full fine-tuning {human_bytes(full)} vs {best['label']} "
                         f"{human_bytes(best[f'n{n}_bytes'])} (one base model + {n} checkpoints of "
                         f"{human_bytes(best['per_task_bytes'])}), {full / best[f'n{n}_bytes']:,.0f}× less.")
    return lines


def definitions() -> list[str]:
    shown = ["trainable_params", "trainable_fraction", "peak_mem_bytes", "mem_weights_bytes", "mem_other_bytes",
             "mem_grads_bytes", "mem_optimizer_bytes", "mem_activations_bytes", "train_tokens_per_s",
             "latency_ms_p50", "latency_ms_p50_merged", "checkpoint_bytes", "forgetting", "quality"]
    return [f"{METRICS[c].axis_label}: {METRICS[c].help}" for c in shown] + [
        "mean ± std: over seeds, sample std (ddof=1); one seed prints the mean alone. n/a: not measured or not "
        "applicable; never counted as zero. MiB = 2^20 bytes, GiB = 2^30 bytes."]


def build_report(source: Path, out: Path | None = None, budget: Budget | None = None, storage_n=STORAGE_N) -> Path:
    """Write the report folder; returns the path of report.html."""
    source, budget = Path(source), budget or Budget()
    name = sweep_name(source)
    out = Path(out) if out else Path("reports") / name
    tables_dir, plots_dir = out / "tables", out / "plots"
    for folder, patterns in ((tables_dir, ["*.md", "*.csv", "*.tex"]), (plots_dir, ["*.png", "*.svg"])):
        folder.mkdir(parents=True, exist_ok=True)
        _clear(folder, patterns)

    trials = load_trials(source)
    agg = aggregate(trials)
    blocks: list[Block] = []
    storage = storage_frame(agg, storage_n) if not agg.empty else pd.DataFrame()

    blocks += [Block("heading", "Key figures"), Block("list", key_figures(trials, agg, storage, storage_n))]

    def add_table(table):
        paths = write_table(table, tables_dir)
        rel = [(ext.upper() if ext != "tex" else "LaTeX", p.relative_to(out)) for ext, p in paths.items()]
        blocks.append(Block("table", table, tuple(rel)))

    if not agg.empty:
        picks = recommend(agg, budget)
        blocks += [Block("heading", "Recommendation"), Block("text", f"Budget: {budget.describe()}."),
                   Block("list", summary(picks, budget))]
        add_table(recommendation_table(picks))
        blocks.append(Block("heading", "Tables"))
        for table in (cost_table(agg), paper_table(agg), storage_table(agg, storage_n)):
            add_table(table)

    plots, left_out = draw_all(agg, trials, plots_dir)
    blocks.append(Block("heading", "Plots"))
    for plot in plots:
        blocks.append(Block("plot", plot, tuple((f.suffix[1:].upper(), f.relative_to(out)) for f in plot.files)))
    if left_out:
        blocks.append(Block("text", "Plots left out:"))
        blocks.append(Block("list", [f"{plot}: {why}" for plot, why in left_out.items()]))

    blocks.append(Block("heading", "Failed and skipped trials"))
    failures = failures_table(trials)
    if failures.rows:
        add_table(failures)
    else:
        blocks.append(Block("text", "None: every trial finished."))

    blocks += [Block("heading", "Metric definitions"), Block("list", definitions())]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    blocks.insert(0, Block("text", f"Sweep {name}, from {source}; generated {stamp} by peft-bench-report."))
    _, html_path = page.write(out, f"peft-bench report: {name}", blocks)
    return html_path


__all__ = ["build_report", "Budget", "QUALITY_METRICS"]
