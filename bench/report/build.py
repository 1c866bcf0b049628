"""Sweep folder -> reports/<sweep>/: tables (md, csv, tex), plots (png, svg), report.md and report.html.

Serving records (peft-bench-serve's) in the folder add the serving section (bench/report/serving.py) and stay out of
the training tables and plots; a folder of serving records alone gets that section alone.

    from bench.report.build import build_report
    build_report("results/quick")            # -> reports/quick/report.html
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from bench.report import answer, claims, explorer, memory_fit, page, serving, uncertainty
from bench.report.aggregate import MIN_SEEDS, TIMED, aggregate, best_marks
from bench.report.load import load_trials, read_table
from bench.report.page import Block
from bench.report.plots import draw_all
from bench.report.recommend import Budget, recommend, recommendation_table, summary
from bench.report.render import write_table
from bench.report.tables import (
    STORAGE_N,
    cost_table,
    failures_table,
    paper_table,
    storage_frame,
    storage_table,
)
from bench.results.metrics import (
    METRICS,
    QUALITY_METRICS,
    human_bytes,
    human_params,
    is_na,
    number,
)


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
    lines = [(f"{len(trials)} trials: {counts.get('ok', 0)} finished, {counts.get('failed', 0)} failed, "
             f"{counts.get('skipped', 0)} skipped (failed and skipped ones are listed at the end).")]
    if agg.empty:
        return lines + ["No finished trial yet: nothing to compare."]
    sizes = agg.groupby("model", sort=False)["total_params_mean"].min()
    seeds = agg["n_seeds"]
    lines.append(f"Models: {', '.join(f'{m} ({human_params(s)} params)' for m, s in sizes.items())}; tasks: "
                 f"{', '.join(dict.fromkeys(agg['task']))}; {agg['label'].nunique()} methods in "
                 f"{agg['family'].nunique()} families; seeds per method: "
                 f"{seeds.min() if seeds.min() == seeds.max() else f'{seeds.min()}–{seeds.max()}'}.")
    shown = {"trainable_fraction": ("fewest trainable parameters", lambda v: f"{100 * v:.3g}%"),
             "peak_mem_bytes": ("lowest peak memory", human_bytes),
             "train_tokens_per_s": ("fastest training", lambda v: f"{v:,.0f} tokens/s")}
    marks = best_marks(agg, list(shown))
    for (model, task), rows in agg.groupby(["model", "task"], sort=False):
        parts = []
        tied = rows[rows["quality_tied"].eq(True)] if "quality_tied" in rows else rows.iloc[:0]
        if len(tied):
            top = tied["quality_mean"].max()
            seeds = int(tied["n_seeds"].min())
            parts.append("not shown worse than the best quality: " + ", ".join(tied["label"]) +
                         f" ({rows['quality_metric'].iloc[0] or 'quality'} up to {number('quality', top)}"
                         + (f"; {seeds} seed(s): not separable from the rest either" if seeds < MIN_SEEDS else "")
                         + ")")
        elif rows["quality_mean"].notna().any():
            parts.append("top quality: n/a (no interval)")
        unstable = uncertainty.unstable_names(rows)
        if unstable:
            parts.append(f"unstable, never in the top set: {unstable}")
        for column, (text, show) in shown.items():
            best = rows[marks.loc[rows.index, column]]
            if column in TIMED and not len(best):
                parts.append(f"{text}: no verdict (not timed alone)")
            elif len(best):
                means = best[f"{column}_mean"]
                value = means.min() if METRICS[column].better == "min" else means.max()
                parts.append(f"{text} {', '.join(best['label'])} ({show(value)})")
        lines.append(f"{model} / {task}: " + "; ".join(parts) + ".")
    return lines + ([] if storage.empty else storage_lines(storage, ns[-1]))


def storage_lines(storage: pd.DataFrame, n: int) -> list[str]:
    """Per model: full fine-tuning's copies for n tasks against the method that stores them in the fewest bytes."""
    lines = []
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
    return [f"{m.axis_label}: {m.help}" for m in METRICS.values() if m.cost] + [
        ("mean ± std: over seeds, sample std (ddof=1); one seed prints the mean alone. quality 95% CI: the interval "
        "of the mean over the evaluated items (n items) and seeds. n/a: not measured or not applicable; never "
        "counted as zero. MiB = 2^20 bytes, GiB = 2^30 bytes.")]


MAIN_PLOT = "quality_vs_peak_memory"


def build_report(source: Path, out: Path | None = None, budget: Budget | None = None, storage_n=STORAGE_N,
                 latency_source: Path | None = None) -> Path:
    """Write the report folder; returns the path of report.html. `latency_source`: a sweep timed one trial at a
    time (sweep=latency), whose trials give the latency findings in place of this sweep's."""
    source, budget = Path(source), budget or Budget()
    name = sweep_name(source)
    out = Path(out) if out else Path("reports") / name
    for folder, patterns in ((out / "tables", ["*.md", "*.csv", "*.tex"]), (out / "plots", ["*.png", "*.svg"])):
        folder.mkdir(parents=True, exist_ok=True)
        _clear(folder, patterns)
    rows = read_table(source)
    trials = uncertainty.fill_trial_intervals(load_trials(source, rows))
    title, stamp = f"peft-bench report: {name}", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    timed_in = f"; latency findings from {latency_source}" if latency_source else ""
    report = _Report(out, [Block("sub", f"Sweep {name}, from {source}{timed_in}; generated {stamp} by "
                                        "peft-bench-report.")])
    serving_blocks = serving.section(rows, out)
    if trials.empty and serving_blocks:  # a serving sweep alone: no training figure to report
        return page.write(out, title, report.blocks + serving_blocks, ())[1]
    found = uncertainty.decisions(trials)
    agg = aggregate(trials)
    agg = uncertainty.annotate(agg, found) if not agg.empty else agg
    storage = storage_frame(agg, storage_n) if not agg.empty else pd.DataFrame()
    plots, left_out = draw_all(agg, trials, out / "plots")
    if not agg.empty:
        _answer(report, agg, trials, plots, budget)
    report.blocks += [Block("heading", "Key figures", anchor="key-figures"),
                      Block("list", key_figures(trials, agg, storage, storage_n))]
    findings = _findings(report, trials, latency_source)
    if not agg.empty:
        _tables(report, agg, trials, storage_n)
    _plots(report, plots, left_out)
    report.blocks += [Block("heading", "Uncertainty", anchor="uncertainty"),
                      Block("list", [TIE_TEXT, SEED_TEXT, SPLIT_TEXT, multiplicity(findings, found),
                                     *uncertainty.evidence(trials, found)])]
    _failures(report, trials)
    report.blocks += serving_blocks
    report.blocks += [Block("heading", "Metric definitions", anchor="definitions"), Block("list", definitions())]
    _, html_path = page.write(out, title, report.blocks, report.scripts)
    return html_path


class _Report:
    """The page's blocks as they are added, the explorer's scripts, and where tables are written."""

    def __init__(self, out: Path, blocks: list[Block]):
        self.out, self.blocks, self.scripts = out, blocks, ()

    def add_table(self, table) -> None:
        paths = write_table(table, self.out / "tables")
        rel = [(ext.upper() if ext != "tex" else "LaTeX", p.relative_to(self.out)) for ext, p in paths.items()]
        self.blocks.append(Block("table", table, tuple(rel)))

    def links(self, plot) -> tuple:
        return tuple((f.suffix[1:].upper(), f.relative_to(self.out)) for f in plot.files)


def _answer(report: _Report, agg, trials, plots, budget: Budget) -> None:
    """The answer cards and the main plot, the interactive explorer, the recommendation within the budget."""
    report.blocks += [Block("heading", "The answer", anchor="answer"), Block("cards", answer.cards(agg)),
                      Block("sub", answer.LEGEND)]
    main = next((p for p in plots if p.name == MAIN_PLOT), plots[0] if plots else None)
    if main is not None:
        report.blocks.append(Block("main-plot", main, report.links(main)))
    report.blocks.append(Block("heading", "Explore", anchor="explore"))
    try:
        body, explorer_scripts = explorer.fragment(agg, trials)
    except ImportError as missing:  # plotly is a dependency; a broken install still gets the rest of the report
        report.blocks.append(Block("text", f"The interactive explorer needs plotly ({missing}): pip install plotly."))
    else:
        report.scripts = (explorer_scripts,)
        report.blocks += [Block("text", "Pick the two metrics, the models, tasks, families and methods; hover a point "
                                "for its figures and config. The Pareto front is recomputed for what is shown "
                                "(report.html only; it works offline, opened from disk)."), Block("html", body)]
    picks = recommend(agg, budget, trials)
    report.blocks += [Block("heading", "Recommendation", anchor="recommendation"),
                      Block("text", f"Budget: {budget.describe()}."), Block("list", summary(picks, budget))]
    report.add_table(recommendation_table(picks))


def _findings(report: _Report, trials, latency_source: Path | None) -> list[str]:
    """The published findings, as sentences and as one table; returns the sentences."""
    latency = load_trials(latency_source, read_table(latency_source)) if latency_source else None
    found = claims.findings(trials, latency, sweep_name(latency_source) if latency_source else "")
    if found:
        report.blocks += [Block("heading", "Published findings", anchor="findings"), Block("text", claims.EXPLAINED),
                          Block("list", [f.line for f in found])]
        report.add_table(claims.table(found))
    return [f.line for f in found]


def _tables(report: _Report, agg, trials, storage_n) -> None:
    report.blocks.append(Block("heading", "Tables", anchor="tables"))
    for table in (cost_table(agg), paper_table(agg), storage_table(agg, storage_n)):
        report.add_table(table)
    memory_fit.add_section(trials, report.blocks, report.add_table)  # peak memory predicted at 1B / 7B / 70B


def _plots(report: _Report, plots, left_out: dict) -> None:
    report.blocks.append(Block("heading", "Plots", anchor="plots"))
    for plot in plots:
        report.blocks.append(Block("plot", plot, report.links(plot)))
    if left_out:
        report.blocks.append(Block("text", "Plots left out:"))
        report.blocks.append(Block("list", [f"{plot}: {why}" for plot, why in left_out.items()]))


def _failures(report: _Report, trials) -> None:
    report.blocks.append(Block("heading", "Failed and skipped trials", anchor="failures"))
    failures = failures_table(trials)
    if failures.rows:
        report.add_table(failures)
    else:
        report.blocks.append(Block("text", "None: every trial finished."))


TIE_TEXT = ("Not shown worse than the best: multiple comparisons with the best (Hsu): a method leaves the set only "
            "when some other method is shown better than it, each comparison one-sided at alpha / (m − 1) over the "
            "m methods (Bonferroni), paired over the same items and seeds where per-item scores exist, else on the "
            f"per-trial intervals; alpha {uncertainty.ALPHA:g}. Every method is compared with every other, not with "
            "the observed top alone, so picking the top from the same data is accounted for: the set holds the best "
            "method with 95% confidence. Its members are not ranked. An unstable method (a seed at the task's "
            "trivial baseline beside one above it, or a seed far from its other seeds) is never in it.")
SEED_TEXT = ("Intervals over seeds: the item noise of the seed-averaged value plus the spread between seeds over k, "
             "each at its own quantile: normal for items, t on k − 1 degrees of freedom for seeds (three seeds give "
             "a t of 4.3, not 1.96). In a coverage simulation (tests/test_coverage_sim.py: 1,000 studies with a true "
             "difference of 0 and a seed spread large against item noise) it covers 0 in at least 95% of studies "
             "with 3 and 5 seeds; the paired bootstrap over seeds used before covered 79% with 3 seeds and 87% with "
             "5. Each verdict also says how many seeds agree in sign; with fewer than 3 seeds none is stronger than "
             "not separable.")
SPLIT_TEXT = ("The split into training, validation and test items is fixed across seeds (the seeds vary training "
              "only): the intervals cover the test items and the training seeds, not a different draw of the "
              "training set.")


def multiplicity(findings: list[str], found: dict) -> str:
    """How many verdicts the report draws and how it handles their multiplicity."""
    n_findings = claims.count_verdicts(findings)
    n_sets = sum(d.ties is not None for d in found.values())
    n_baseline = sum(len(d.estimates) for d in found.values() if d.metric == "quality" and d.baseline == d.baseline)
    return (f"Verdicts drawn: {n_findings} in Published findings, {n_sets} sets of methods not shown worse than the "
            f"best (quality and forgetting per model × task) and {n_baseline} checks against a trivial baseline. "
            "Within a set or a baseline check the comparisons are corrected (Bonferroni over the methods of the "
            "model × task); the findings are not corrected across each other: each is a 95% interval on its own, "
            f"so by chance alone about 1 in 20 could be wrong, about {n_findings / 20:.1f} of {n_findings}.")


__all__ = ["QUALITY_METRICS", "Budget", "build_report"]
