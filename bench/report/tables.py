"""The report's tables: cost, paper-style (LoRA paper's GLUE layout), storage for N tasks, failed/skipped trials.

Each builder takes the aggregated table (aggregate.py) or the raw trials and returns a render.Table: cells for
Markdown/HTML/LaTeX and a frame of raw numbers for the CSV.
"""

from __future__ import annotations

import pandas as pd

from bench.common.families import family_rank
from bench.report.aggregate import best_marks
from bench.report.render import Cell, Table
from bench.results.metrics import (
    METRICS,
    NA,
    QUALITY_NAMES,
    human_bytes,
    human_params,
    is_na,
    number,
)

COST_COLUMNS = [c for c, m in METRICS.items() if m.cost]  # the catalogue's cost columns, in its order
# dropped when no row has them (e.g. MFU, CPU-only parts)
OPTIONAL = [c for c in COST_COLUMNS if not METRICS[c].required]
COST_BEST = [c for c in COST_COLUMNS if METRICS[c].better]
STORAGE_N = (1, 10, 100)
FULL_FAMILY = "full"


def metric_cell(row: pd.Series, column: str, best: bool = False, scale: float = 1.0, digits: int | None = None) -> Cell:
    """`mean ± std` in the metric's display unit; the std only where more than one seed has the value."""
    mean, std, n = row.get(f"{column}_mean"), row.get(f"{column}_std"), row.get(f"{column}_n", 0)
    if is_na(mean):
        return Cell(NA)
    metric = METRICS[column]
    show = (lambda v: f"{scale * v:.{digits}f}") if digits is not None else (lambda v: number(metric, v))
    spread = show(std).lstrip("+") if (not is_na(n) and n > 1 and not is_na(std)) else None
    return Cell(show(mean), spread, best)


def _raw_frame(agg: pd.DataFrame, keys: list[str], columns: list[str]) -> pd.DataFrame:
    stats = [f"{c}_{s}" for c in columns for s in ("mean", "std", "n") if f"{c}_{s}" in agg]
    return agg[keys + stats].copy()


def interval_cell(row: pd.Series, metric: str = "quality", scale: float = 1.0, digits: int = 3) -> Cell:
    """The 95% interval of the mean over seeds, `[low, high]`; n/a where none could be computed."""
    low, high = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    if is_na(low) or is_na(high):
        return Cell(NA)
    return Cell(f"[{scale * low:.{digits}f}, {scale * high:.{digits}f}]")


def items_cell(row: pd.Series) -> Cell:
    return Cell(NA if is_na(row.get("n_eval")) else f"{int(row['n_eval'])}")


def baseline_note(row: pd.Series) -> str:
    """`≈` after a quality not shown above the task's trivial baseline; ` unstable` after an unstable method's;
    `‡` after one trained at a rate not chosen for its model."""
    unstable = isinstance(row.get("unstable"), str) and row.get("unstable") != ""
    return (" ≈" if row.get("at_baseline") is True else "") + (UNSTABLE_MARK if unstable else "") + rate_mark(row)


def rate_mark(row: pd.Series) -> str:
    """` ‡` where a seed of the row trained at a rate not chosen for its model (aggregate's `rate_not_chosen`)."""
    return RATE_MARK if row.get("rate_not_chosen") in (True,) else ""  # np.True_ too; never NaN or None


def quality_notes(rows: list[list[Cell]]) -> list[str]:
    """The legends of the marks baseline_note put on the rows' cells, those that occur."""
    marks = {c.note for r in rows for c in r}
    return [note for mark, note in ((" ≈", BASELINE_NOTE), (UNSTABLE_MARK, UNSTABLE_NOTE), (RATE_MARK, RATE_NOTE))
            if any(mark in m for m in marks)]


UNSTABLE_MARK = " (unstable)"
RATE_MARK = " ‡"
RATE_NOTE = ("‡: trained at a learning rate not chosen on this model's validation split (the method's rate from "
             "another model's search, or one set by hand): a low figure may say more about the rate than the method.")
PROBE_UNITS = {"perplexity": "perplexity rise (decoder)", "retrieval_recall@1": "recall@1 loss (encoder)"}
BASELINE_NOTE = ("≈: not shown above the task's trivial baseline (classification: predicting the most frequent "
                 "label; generation: the article's lead sentence as the headline, scored the same way); one-sided at "
                 "alpha 0.05 over the methods of the model × task (Bonferroni), seed part on t(seeds − 1).")
UNSTABLE_NOTE = ("(unstable): a seed at the trivial baseline beside one above it, or a seed far from the method's "
                 "other seeds; never bold, never in the top set, never on a Pareto front (the reasons are listed "
                 "under The answer).")
TIE_NOTE = ("bold: best in its model × task within the noise: for quality and forgetting the methods not shown worse "
            "than the best (multiple comparisons with the best, see Uncertainty), for the other columns the methods "
            "not shown worse than the best mean over seeds (t on seeds − 1; only with 3 seeds or more, except for "
            "figures the same on every seed; speed and latency only from trials timed alone).")
FORGETTING_NOTE = ("forgetting is two constructs, never compared across model types: an encoder's retrieval "
                   "recall@1 loss ((before − after) / before) and a decoder's perplexity rise (after / before − 1), "
                   "named in the probe column; a perplexity rise is the geometric mean over seeds (one collapsed seed "
                   "would swamp an arithmetic mean), with its interval on the log scale.")


def forgetting_probe_cell(row: pd.Series) -> Cell:
    probe = row.get("forgetting_probe")
    return Cell(PROBE_UNITS.get(probe, probe) if isinstance(probe, str) and probe else NA)


def cost_table(agg: pd.DataFrame) -> Table:
    columns = [c for c in COST_COLUMNS if f"{c}_mean" in agg]
    columns = [c for c in columns if c not in OPTIONAL or agg[f"{c}_mean"].notna().any()]
    marks = best_marks(agg, [c for c in COST_BEST if c in columns])
    rows = []
    for i, row in agg.iterrows():
        cells = [Cell(row["model"]), Cell(row["task"]), Cell(row["label"]), Cell(row["family"]),
                 Cell(str(row["n_seeds"]))]
        cells += [metric_cell(row, c, bool(marks.at[i, c]) if c in marks else False) for c in columns]
        cells[-1].note = baseline_note(row) if columns[-1] == "quality" else ""
        cells += [interval_cell(row), items_cell(row), Cell(row["quality_metric"] or NA),
                  interval_cell(row, "forgetting"), forgetting_probe_cell(row)]
        rows.append(cells)
    headers = (["model", "task", "method", "family", "seeds"] + [METRICS[c].axis_label for c in columns] +
               ["quality 95% CI", "n items", "metric", "forgetting 95% CI", "forgetting probe"])
    frame = _raw_frame(agg, ["model", "task", "family", "method", "label", "n_seeds", "quality_metric"], columns)
    for extra in ("quality_ci_low", "quality_ci_high", "n_eval", "quality_tied", "at_baseline", "baseline",
                  "baseline_kind", "unstable", "forgetting_ci_low", "forgetting_ci_high", "forgetting_tied",
                  "forgetting_probe", "forgetting_geometric", "timed_alone_all"):
        if extra in agg:
            frame[extra] = agg[extra]
    frame["best"] = [", ".join(c for c in marks.columns if marks.at[i, c]) for i in agg.index]
    notes = ["Mean ± std (sample, ddof=1) over the seeds of each row (seeds column); quality 95% CI: interval of the "
             "mean over the n evaluated items (and seeds). " + TIE_NOTE + " n/a: not measured or not applicable (e.g. "
             "merged latency for a method that cannot merge). Memory in MiB (2^20 bytes)."]
    notes += quality_notes(rows)
    if "forgetting" in columns:
        notes.append(FORGETTING_NOTE)
    if not agg.get("timed_alone_all", pd.Series(False, index=agg.index)).eq(True).all():
        notes.append("Not timed alone: " + ("every trial" if not agg.get("timed_alone_all", pd.Series(
            False, index=agg.index)).eq(True).any() else "some trials") + " ran beside other work (or did not "
            "record what ran beside them), so their throughput, MFU and latency are figures, not verdicts: no bold.")
    if "mem_other_bytes" in columns:
        notes.append("runtime/other (CPU): process RSS before training minus the weights; weights + runtime/other + "
                     "gradients + optimizer + activations = peak.")
    return Table("cost", "Cost of each method: parameters, memory, speed, inference, storage, forgetting, quality",
                 headers, rows, frame, group_columns=2, text_columns=4, notes=notes)


def _params_text(values: pd.Series) -> str:
    shown = sorted({human_params(v) for v in values.dropna()})
    return NA if not shown else shown[0] if len(shown) == 1 else f"{shown[0]}–{shown[-1]}"


def paper_table(agg: pd.DataFrame) -> Table:
    """Rows grouped by model, then method; trainable params, each task's primary metric ×100, average."""
    tasks = sorted(set(agg["task"]))
    metric_of = agg.groupby("task")["quality_metric"].first()
    items = agg.groupby("task")["n_eval"].max() if "n_eval" in agg else pd.Series(dtype=float)
    task_headers = [f"{t} ({QUALITY_NAMES.get(metric_of[t], metric_of[t] or 'quality')}"
                    + ("" if is_na(items.get(t)) else f", n = {int(items[t])}") + ")" for t in tasks]
    marks = best_marks(agg, ["quality"])
    rows, records, seeds = [], [], set()
    for (model, label), group in agg.groupby(["model", "label"], sort=False):
        by_task = group.set_index("task")
        record = {"model": model, "method": group["method"].iloc[0], "label": label, "family": group["family"].iloc[0],
                  "trainable_params": group["trainable_params_mean"].mean()}
        cells = [Cell(model), Cell(label), Cell(_params_text(group["trainable_params_mean"]))]
        means = []
        for task in tasks:
            if task not in by_task.index or is_na(by_task.at[task, "quality_mean"]):
                cells.append(Cell(NA))
                record.update({f"{task}_mean": float("nan"), f"{task}_std": float("nan"), f"{task}_n": 0})
                continue
            row = by_task.loc[task]
            best = bool(marks.at[group.index[list(group["task"]).index(task)], "quality"])
            cells.append(metric_cell(row, "quality", best, scale=100, digits=1))
            cells[-1].note = baseline_note(row)
            means.append(row["quality_mean"])
            seeds.add(int(row["quality_n"]))
            record.update({f"{task}_mean": row["quality_mean"], f"{task}_std": row["quality_std"],
                           f"{task}_n": row["quality_n"]})
        average = sum(means) / len(means) if means else float("nan")
        partial = 0 < len(means) < len(tasks)
        cells.append(Cell(NA) if not means else Cell(f"{100 * average:.1f}", note="†" if partial else ""))
        record.update({"average": average, "average_tasks": len(means)})
        rows.append(cells)
        records.append(record)
    frame = pd.DataFrame(records)
    span = (f"{min(seeds)}" if len(seeds) == 1 else f"{min(seeds)}–{max(seeds)}") if seeds else "0"
    notes = [(f"Primary metric ×100, mean ± std over {span} seed(s); bold: not shown worse than the best of its "
             "model and task (multiple comparisons with the best, see Uncertainty); avg. is never bold: no test "
             "stands behind it. "
             "Trainable parameters as counted by the harness (a range where tasks differ, e.g. by label "
             "count).")]
    notes += quality_notes(rows)
    if any(c.note == "†" for r in rows for c in r):
        notes.append("† average over the tasks this method finished, not all tasks.")
    return Table("paper", "Paper-style results (LoRA-paper layout): trainable parameters and task quality",
                 ["model", "method", "# trainable params", *task_headers, "avg."], rows, frame,
                 group_columns=1, text_columns=2, notes=notes)


def base_model_bytes(agg: pd.DataFrame) -> dict[str, tuple[float, bool]]:
    """Bytes of one base-model copy per model, and whether it is estimated (no full fine-tuning trial to measure)."""
    out = {}
    for model, group in agg.groupby("model", sort=False):
        full = group.loc[group["family"] == FULL_FAMILY, "checkpoint_bytes_mean"].dropna()
        if len(full):
            out[model] = (full.mean(), False)
        else:  # the weights in memory of the leanest variant: base weights plus at most a small adapter
            out[model] = (group["mem_weights_bytes_mean"].min(), True)
    return out


def storage_frame(agg: pd.DataFrame, ns=STORAGE_N) -> pd.DataFrame:
    """Bytes to serve N tasks: full = N full copies; any other method = one base copy + N checkpoints."""
    bases = base_model_bytes(agg)
    records = []
    for (model, label), group in agg.groupby(["model", "label"], sort=False):
        family = group["family"].iloc[0]
        per_task = group["checkpoint_bytes_mean"].mean()
        base = 0.0 if family == FULL_FAMILY else bases[model][0]
        records.append({"model": model, "label": label, "family": family, "per_task_bytes": per_task,
                        "base_bytes": base, "estimated": False,
                        **{f"n{n}_bytes": base + n * per_task for n in ns}})
    for model, (base, estimated) in bases.items():
        if estimated and not pd.isna(base):
            records.append({"model": model, "label": "full fine-tuning (estimated)", "family": FULL_FAMILY,
                            "per_task_bytes": base, "base_bytes": 0.0, "estimated": True,
                            **{f"n{n}_bytes": n * base for n in ns}})
    frame = pd.DataFrame(records)
    if frame.empty:
        return frame
    frame = frame.sort_values(["model", "family", "label"],
                              key=lambda s: s.map(family_rank) if s.name == "family" else s, kind="stable")
    full = frame[frame["family"] == FULL_FAMILY].groupby("model")[f"n{ns[-1]}_bytes"].min()
    frame[f"saving_vs_full_n{ns[-1]}"] = frame["model"].map(full) / frame[f"n{ns[-1]}_bytes"]
    return frame.reset_index(drop=True)


def storage_table(agg: pd.DataFrame, ns=STORAGE_N) -> Table:
    frame = storage_frame(agg, ns)
    rows = []
    for _, r in frame.iterrows():
        saving = r[f"saving_vs_full_n{ns[-1]}"]
        rows.append([Cell(r["model"]), Cell(r["label"]), Cell(r["family"]), Cell(human_bytes(r["per_task_bytes"])),
                     *[Cell(human_bytes(r[f"n{n}_bytes"])) for n in ns],
                     Cell(NA if is_na(saving) else f"{saving:,.1f}×")])
    notes = [("Convention: full fine-tuning stores one full model copy per task (N × checkpoint); every other method "
             "stores one shared base-model copy plus one checkpoint per task (base + N × checkpoint). "
             f"Last column: bytes of full fine-tuning / bytes of the method, at N = {ns[-1]}.")]
    if frame.get("estimated", pd.Series(dtype=bool)).any():
        notes.append("full fine-tuning (estimated): the sweep has no full fine-tuning trial for this model; one copy "
                     "is estimated as the smallest weights-in-memory figure among its trials.")
    return Table("storage", "Storage for N tasks: full copies vs one base model + adapters",
                 ["model", "method", "family", "per task", *[f"N = {n}" for n in ns], f"full ÷ method (N = {ns[-1]})"],
                 rows, frame, group_columns=1, text_columns=3, notes=notes)


def failures_table(trials: pd.DataFrame, width: int = 240) -> Table:
    """Every failed and skipped trial with its reason, seeds that failed alike on one row; the CSV keeps every trial
    and the whole message."""
    bad = trials[trials["status"] != "ok"].sort_values(["status", "model", "task", "label", "seed"])
    reasons = [": ".join(str(x) for x in (r["error_type"], r["error_message"]) if x) or "no reason recorded"
               for _, r in bad.iterrows()]
    shown = bad.assign(reason=reasons, phase=bad["error_phase"].fillna(NA))
    rows = []
    for (status, model, task, label, phase, reason), group in shown.groupby(
            ["status", "model", "task", "label", "phase", "reason"], sort=False):
        seeds = ", ".join(NA if is_na(s) else str(int(s)) for s in group["seed"])
        reason = reason if len(reason) <= width else reason[: width - 1] + "…"
        rows.append([Cell(status), Cell(model), Cell(task), Cell(label), Cell(seeds), Cell(phase), Cell(reason)])
    frame = bad[["status", "model", "task", "family", "method", "label", "seed", "error_type", "error_phase",
                 "error_message", "trial_dir"]]
    return Table("failures", "Failed and skipped trials",
                 ["status", "model", "task", "method", "seeds", "phase", "reason"], rows, frame, text_columns=7)
