"""What the report may claim: intervals of each method's quality and forgetting, the set of methods not shown worse
than the best in each model × task, whether a quality is shown above the task's trivial baseline, and which methods
are unstable.

Evidence, best first, per model × task:
1. per-item scores beside each trial record (items.json): differences paired over the same items and seeds;
2. per-trial intervals (quality_ci_low/high, n_eval): unpaired differences of the means;
3. neither (tables from before intervals were recorded): Wilson intervals from the accuracy and the number of
   evaluated items, n_eval, inferred as the smallest n that makes every accuracy of the task a whole count.
Every interval over seeds puts its seed part on k − 1 degrees of freedom (stats.Estimate). Without any evidence the
tie set is n/a: the report says so rather than naming a winner.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.common import stats
from bench.results.metrics import is_na

ALPHA = stats.ALPHA
MIN_SEEDS = 3  # fewer seeds cannot show training noise: verdicts stop at "not separable"
MIN_DISTINCT_FOR_N = 5  # distinct accuracies needed before n_eval is inferred from them (fewer fit too many n)
MAX_INFERRED_N = 5000
SOURCES = {"record": "interval recorded by the trial", "wilson": "Wilson from accuracy and the recorded n_eval",
           "inferred": "Wilson from accuracy and n_eval inferred from the accuracies (the table has no n_eval)"}


def infer_n_eval(accuracies) -> int | None:
    """The smallest item count that turns every accuracy into a whole number of correct items, or None where the
    accuracies are too few to pin it down. An n that is a divisor of the true one only widens the intervals."""
    values = np.unique(np.round(pd.to_numeric(pd.Series(accuracies), errors="coerce").dropna().to_numpy(), 9))
    values = values[(values > 0) & (values < 1)]
    if len(values) < MIN_DISTINCT_FOR_N:
        return None
    for n in range(2, MAX_INFERRED_N + 1):
        if np.all(np.abs(values * n - np.round(values * n)) < 1e-6 * n):
            return n
    return None


def fill_trial_intervals(trials: pd.DataFrame) -> pd.DataFrame:
    """quality_ci_low/high and n_eval for every finished trial that can have them, and `ci_source` saying how."""
    trials = trials.copy()
    source = pd.Series(np.where(trials["quality_ci_low"].notna(), "record", None), index=trials.index, dtype=object)
    accuracy = trials["quality_metric"].eq("accuracy") & trials["quality"].notna() & trials["quality_ci_low"].isna()
    for task, rows in trials[accuracy].groupby("task"):
        n_known = rows["n_eval"].notna()
        inferred = infer_n_eval(trials.loc[trials["task"].eq(task) & trials["quality_metric"].eq("accuracy"),
                                           "quality"]) if not n_known.all() else None
        for index, row in rows.iterrows():
            n = row["n_eval"] if n_known[index] else inferred
            if n is None or pd.isna(n):
                continue
            low, high = stats.wilson_interval(round(row["quality"] * n), int(n))
            trials.loc[index, ["quality_ci_low", "quality_ci_high", "n_eval"]] = [low, high, n]
            source[index] = "wilson" if n_known[index] else "inferred"
    trials["ci_source"] = source
    return trials


@dataclass
class Decision:
    """The top of one model × task for one metric."""
    model: str
    task: str
    metric: str
    ties: stats.TieSet | None  # None: no interval, nothing can be decided
    interval: dict = field(default_factory=dict)  # label -> (low, high) of the mean over seeds
    n_items: dict = field(default_factory=dict)  # label -> items per seed
    baseline: float = float("nan")  # the task's trivial baseline (quality only), NaN where unknown
    baseline_kind: str = ""  # "majority class", "lead sentence"
    at_baseline: list[str] = field(default_factory=list)  # not shown above the baseline
    unstable: dict = field(default_factory=dict)  # label -> why: a seed at the baseline, or far outside the others
    paired: bool = False
    log_scale: bool = False  # forgetting on a perplexity probe: compared as log(after / before)
    estimates: dict = field(default_factory=dict)  # label -> stats.Estimate (on the compared scale)
    n_seeds: int = 0  # the fewest seeds of any method in the decision

    def tied(self, label: str) -> bool:
        return self.ties is not None and label in self.ties.tied

    def describe(self) -> str:
        return self.ties.describe() if self.ties is not None and self.ties.top else "n/a (no interval)"

    def shown_worse(self) -> dict[str, str]:
        """{label: "below lora on 3 of 3 seeds"} for each method shown worse than another: the verdict with how
        many seeds agree in its sign."""
        if self.ties is None:
            return {}
        out = {}
        for label, by in self.ties.beaten_by.items():
            mine, theirs = self.estimates[label].per_seed, self.estimates[by].per_seed
            better = [(t - m) * (1 if self.metric == "quality" else -1) > 0 for m, t in zip(mine, theirs)]
            word = "below" if self.metric == "quality" else "above"
            out[label] = f"{word} {by} on {sum(better)} of {len(better)} seeds"
        return out


def _items(rows: pd.DataFrame, key: str):
    """{label: [per-seed arrays]} on the seeds every label has items for, or None where pairing is impossible."""
    if key not in rows or rows[key].isna().all():
        return None
    by_label = {label: dict(zip(group["seed"], group[key])) for label, group in rows.groupby("label", sort=False)}
    seeds = set.intersection(*({s for s, v in d.items() if not is_na(v)}
                               for d in by_label.values()))
    if not seeds:
        return None
    scores = {label: [np.asarray(d[s], dtype=float) for s in sorted(seeds)] for label, d in by_label.items()}
    lengths = {tuple(len(a) for a in arrays) for arrays in scores.values()}
    return scores if len(lengths) == 1 else None


def _trial_se(group: pd.DataFrame, low_col: str, high_col: str) -> pd.Series:
    if low_col not in group:
        return pd.Series(np.nan, index=group.index)
    return stats.se_from_interval(group[low_col], group[high_col])


def _estimate_each(decision: Decision, rows: pd.DataFrame, scores: dict | None, metric: str, columns) -> None:
    """Each method's estimate: from its per-item scores where it has them, else from its trials' intervals."""
    low_col, high_col, n_col = columns
    for label, group in rows.groupby("label", sort=False):
        if scores is not None and label in scores:
            decision.estimates[label] = stats.estimate(scores[label])
        else:
            decision.estimates[label] = stats.estimate_from_trials(group[metric], _trial_se(group, low_col, high_col))
        if n_col in group and group[n_col].notna().any():
            decision.n_items[label] = int(group[n_col].max())


def decide(rows: pd.DataFrame, metric: str, higher_is_better: bool, items_key: str | None = None,
           alpha: float = ALPHA, unstable: dict | None = None, exclude=()) -> Decision:
    """Tie set, intervals, baseline and stability checks for one model × task (rows: its finished trials).

    Intervals: stats.Estimate per method (seed part on k − 1 degrees of freedom), from per-item scores where
    every method has them on the same seeds, else from the per-trial intervals. Unstable methods (`unstable`, or
    found here on quality) are left out of the tie set: a mean over a collapsed seed is no bet to recommend; so are
    the labels in `exclude`."""
    first = rows.iloc[0]
    low_col, high_col, n_col = (("quality_ci_low", "quality_ci_high", "n_eval") if metric == "quality" else
                                (f"{metric}_ci_low", f"{metric}_ci_high", "n_probe"))
    decision = Decision(first["model"], first["task"], metric, None)
    decision.log_scale = metric == "forgetting" and _perplexity_probe(rows)
    if decision.log_scale:  # compared as log(after / before); intervals are shown back on the relative scale
        rows = rows.assign(**{c: np.log1p(rows[c].astype(float)) for c in (metric, low_col, high_col) if c in rows})
    rows = rows[rows[metric].notna()]
    if rows.empty:
        return decision
    scores = _items(rows, items_key) if items_key else None
    _estimate_each(decision, rows, scores, metric, (low_col, high_col, n_col))
    decision.paired = scores is not None and set(scores) >= set(decision.estimates)
    decision.n_seeds = min(e.n_seeds for e in decision.estimates.values())
    if metric == "quality":
        _baseline_checks(decision, rows, alpha)
    decision.unstable = {**decision.unstable, **(unstable or {})}
    decision.interval = {label: e.interval() for label, e in decision.estimates.items()
                         if np.isfinite(e.half_width())}
    stable = {label: e for label, e in decision.estimates.items()
              if label not in decision.unstable and label not in exclude}
    if decision.paired:
        decision.ties = stats.tie_set({label: scores[label] for label in stable}, alpha, higher_is_better)
    elif any(np.isfinite(e.half_width()) for e in stable.values()):
        sign = 1.0 if higher_is_better else -1.0
        decision.ties = stats.best_set(
            stable, lambda j, i: stats.unpaired(stable[j], stable[i], sign), alpha, higher_is_better,
            "multiple comparisons with the best on the per-trial intervals (no per-item scores; unpaired, so "
            "conservative)")
    if decision.log_scale:
        decision.interval = {label: (float(np.expm1(low)), float(np.expm1(high)))
                             for label, (low, high) in decision.interval.items()}
    bounds = (0.0, 1.0) if metric == "quality" else (-np.inf, 1.0) if not decision.log_scale else (-1.0, np.inf)
    # scores live in [0, 1], a recall loss is at most 1, a perplexity ratio above 0: t(2) can reach past them
    decision.interval = {label: (float(np.clip(low, *bounds)), float(np.clip(high, *bounds)))
                         for label, (low, high) in decision.interval.items()}
    return decision


def _baseline_checks(decision: Decision, rows: pd.DataFrame, alpha: float) -> None:
    """at_baseline (the mean over seeds not shown above the trivial baseline, one-sided, Bonferroni over the
    methods) and unstable (a seed at the baseline beside one above it, or a seed far outside the others)."""
    score = rows["baseline_score"].dropna() if "baseline_score" in rows else pd.Series(dtype=float)
    if len(score):
        decision.baseline = float(score.iloc[0])
        kind = rows.loc[score.index, "baseline_kind"].dropna() if "baseline_kind" in rows else pd.Series([])
        decision.baseline_kind = str(kind.iloc[0]) if len(kind) else "trivial"
        level = alpha / max(len(decision.estimates), 1)
        decision.at_baseline = [label for label, e in decision.estimates.items()
                                if not e.shown_above(decision.baseline, level)]
    decision.unstable = unstable_seeds(rows, decision.baseline, decision.baseline_kind)


OUTLIER_SE = 8.0  # a seed this many item standard errors from the nearest other seed is far outside them: in the
# study the stable methods' seeds sat within 4 of each other, a collapsed seed 20 to 30 away


def unstable_seeds(rows: pd.DataFrame, baseline: float = float("nan"), kind: str = "") -> dict[str, str]:
    """{label: why} for methods whose seeds disagree about whether they learned the task:
    - a seed whose own interval over items reaches the trivial baseline (majority class; the lead for generation)
      while another seed is shown above it: the mean over seeds hides a failed run;
    - with three seeds or more, a seed further than OUTLIER_SE item standard errors from the nearest of the
      method's other seeds (a seed at 0.6 beside two at 0.95).
    A method whose every seed sits at the baseline is not unstable: it is at the baseline (at_baseline)."""
    found = {}
    for label, group in rows[rows["quality"].notna()].groupby("label", sort=False):
        group = group.sort_values("seed")
        quality = group["quality"].to_numpy(float)
        se = np.nan_to_num(_trial_se(group, "quality_ci_low", "quality_ci_high").to_numpy(float))
        reasons = []
        if np.isfinite(baseline):
            low = group["quality_ci_low"].where(group["quality_ci_low"].notna(), group["quality"]).to_numpy(float) \
                if "quality_ci_low" in group else quality
            at = low <= baseline
            if at.any() and (~at).any():
                reasons.append(f"{int(at.sum())} of {len(at)} seeds at the {kind or 'trivial'} baseline")
        if len(quality) >= 3:
            scale = [max(np.sqrt(se[i] ** 2 + np.mean(np.delete(se, i) ** 2)), 1e-3) for i in range(len(se))]
            gaps = [(np.min(np.abs(np.delete(quality, i) - q)) / scale[i], i) for i, q in enumerate(quality)]
            far, i = max(gaps)
            if far > OUTLIER_SE:
                reasons.append(f"seed {int(group['seed'].iloc[i])} at {quality[i]:.3f}, far from the others "
                               f"({', '.join(f'{v:.3f}' for v in np.delete(quality, i))})")
        if reasons:
            found[label] = "; ".join(reasons)
    return found


def _perplexity_probe(rows: pd.DataFrame) -> bool:
    """Forgetting read on perplexity: the relative rise (after - before) / before is heavy-tailed (a model that
    collapsed reads 1e13 where others read 2), so a mean and its normal interval over seeds are dominated by one
    trial and the collapsed method cannot be shown worse than any other. log(after / before) = log1p(forgetting)
    is the scale on which such trials separate; it is monotone, so the order of trials is unchanged. A recall
    probe's loss is bounded (at most 1) and stays on its own scale."""
    probe = rows["forgetting_probe"] if "forgetting_probe" in rows else pd.Series(dtype=object)
    return bool(len(probe)) and probe.eq("perplexity").all()


def unstable_names(frame: pd.DataFrame) -> str:
    """"adapter (1 of 3 seeds at the majority class baseline), ..." for the rows whose `unstable` says why; ""
    where none."""
    if "unstable" not in frame:
        return ""
    marked = frame[frame["unstable"].map(lambda v: isinstance(v, str) and v != "")]  # NaN or "": not unstable
    return ", ".join(f"{row['label']} ({row['unstable']})" for _, row in marked.iterrows())


def decisions(trials: pd.DataFrame, alpha: float = ALPHA) -> dict[tuple[str, str, str], Decision]:
    """{(model, task, metric): Decision} for quality (max) and forgetting (min) over the finished trials; a method
    unstable on quality is left out of the forgetting set too, and so is one not shown above the trivial baseline:
    a method that did not learn the task has not shown that it forgets less."""
    ok = trials[trials["status"] == "ok"]
    out = {}
    for (model, task), rows in ok.groupby(["model", "task"], sort=False):
        unstable, exclude = {}, set()
        for metric, higher, items in (("quality", True, "quality_items"), ("forgetting", False, None)):
            if rows[metric].notna().any():
                out[(model, task, metric)] = decide(rows, metric, higher, items, alpha, unstable, exclude)
                unstable, exclude = out[(model, task, metric)].unstable, set(out[(model, task, metric)].at_baseline)
    return out


def annotate(agg: pd.DataFrame, found: dict) -> pd.DataFrame:
    """Adds to the aggregate, per row: `<metric>_ci_low/high` (interval of the mean over seeds), `n_eval`,
    `<metric>_tied` (not shown worse than the best; NaN where undecided), `at_baseline` (True: not shown above the
    trivial baseline; NaN: baseline unknown), `unstable` (why, or NaN), `baseline` and `baseline_kind`. Forgetting
    on a perplexity probe: `forgetting_mean` becomes the geometric mean over seeds of after / before, minus 1, and
    `forgetting_std` NaN (`forgetting_geometric` True): one collapsed seed would dominate an arithmetic mean."""
    agg = agg.copy()
    for metric in ("quality", "forgetting"):
        agg[f"{metric}_ci_low"], agg[f"{metric}_ci_high"] = np.nan, np.nan
        agg[f"{metric}_tied"] = pd.Series(np.nan, index=agg.index, dtype=object)
    agg["n_eval"], agg["at_baseline"] = np.nan, pd.Series(np.nan, index=agg.index, dtype=object)
    agg["unstable"] = pd.Series(np.nan, index=agg.index, dtype=object)
    agg["shown_worse"] = pd.Series(np.nan, index=agg.index, dtype=object)
    agg["baseline"] = np.nan
    agg["baseline_kind"] = pd.Series(None, index=agg.index, dtype=object)
    agg["forgetting_geometric"] = False
    for index, row in agg.iterrows():
        for metric in ("quality", "forgetting"):
            decision = found.get((row["model"], row["task"], metric))
            if decision is None:
                continue
            low, high = decision.interval.get(row["label"], (np.nan, np.nan))
            agg.loc[index, [f"{metric}_ci_low", f"{metric}_ci_high"]] = [low, high]
            if decision.ties is not None and pd.notna(row[f"{metric}_mean"]):
                agg.at[index, f"{metric}_tied"] = decision.tied(row["label"])
            if metric == "forgetting" and decision.log_scale and row["label"] in decision.estimates:
                agg.at[index, "forgetting_mean"] = float(np.expm1(decision.estimates[row["label"]].value))
                agg.at[index, "forgetting_std"] = np.nan
                agg.at[index, "forgetting_geometric"] = True
            if metric == "quality":
                agg.at[index, "n_eval"] = decision.n_items.get(row["label"], np.nan)
                agg.at[index, "unstable"] = decision.unstable.get(row["label"], np.nan)
                agg.at[index, "shown_worse"] = decision.shown_worse().get(row["label"], np.nan)
                if np.isfinite(decision.baseline):
                    agg.at[index, "baseline"] = decision.baseline
                    agg.at[index, "baseline_kind"] = decision.baseline_kind
                    agg.at[index, "at_baseline"] = row["label"] in decision.at_baseline
    return agg.copy()  # one block per dtype: the columns above were added one at a time


def evidence(trials: pd.DataFrame, found: dict) -> list[str]:
    """Sentences saying how the intervals and tie sets were computed, for the report."""
    ok = trials[trials["status"] == "ok"]
    lines = []
    counts = ok["ci_source"].value_counts() if "ci_source" in ok else pd.Series(dtype=int)
    for key, text in SOURCES.items():
        if counts.get(key, 0):
            lines.append(f"{counts[key]} trial(s): quality interval = {text}.")
    missing = int((ok["quality"].notna() & ok["quality_ci_low"].isna()).sum())
    if missing:
        lines.append(f"{missing} trial(s) have no quality interval (no per-item scores, no recorded interval, and "
                     "no n_eval to compute one): their tie sets are n/a.")
    paired = sorted({f"{d.model} / {d.task}" for d in found.values() if d.paired})
    if paired:
        lines.append("Paired over the same items (per-item scores beside the records): " + ", ".join(paired) + ".")
    logged = sorted({f"{d.model} / {d.task}" for d in found.values() if d.log_scale})
    if logged:
        lines.append("Forgetting on a perplexity probe is compared as log(perplexity after / before), where one "
                     "collapsed model cannot swamp a mean (intervals shown back as relative rises): "
                     + ", ".join(logged) + ".")
    hows = sorted({d.ties.how for d in found.values() if d.ties is not None and d.ties.how})
    lines += [f"Top set: {how}." for how in hows]
    if any(d.metric == "quality" and d.at_baseline for d in found.values()):
        lines.append("The forgetting sets leave out the methods not shown above the trivial baseline on quality: a "
                     "method that did not learn the task has not shown that it forgets less.")
    few = sorted({f"{d.model} / {d.task}" for d in found.values() if 0 < d.n_seeds < MIN_SEEDS})
    if few:
        lines.append(f"Fewer than {MIN_SEEDS} seeds ({', '.join(few)}): the spread between training runs is not "
                     "measured (1 seed) or barely (2), so no verdict there is stronger than not separable and no "
                     "method is named clear of the rest.")
    return lines
