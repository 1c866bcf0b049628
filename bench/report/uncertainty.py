"""What the report may claim: intervals of each method's quality and forgetting, the tie set at the top of each
model × task, and whether a quality is distinguishable from the majority-class baseline.

Evidence, best first, per model × task:
1. per-item scores beside each trial record (items.json): paired bootstrap over the same items, pooled over seeds;
2. per-trial intervals (quality_ci_low/high, n_eval): a z test on the intervals, unpaired;
3. neither (tables from before intervals were recorded): Wilson intervals from the accuracy and the number of
   evaluated items, n_eval, inferred as the smallest n that makes every accuracy of the task a whole count.
Without any of them the tie set is n/a: the report says so rather than naming a winner.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import norm

from bench.results import stats
from bench.results.metrics import is_na

ALPHA = stats.ALPHA
BASELINE_COLUMN = "majority_share"  # classification: share of the most frequent label among the evaluated items
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
    baseline: float = float("nan")  # majority-class share (quality only), NaN where unknown
    at_baseline: list[str] = field(default_factory=list)  # not distinguishable from the baseline
    unstable: dict = field(default_factory=dict)  # label -> "1 of 3 seeds": seeds at the baseline, others above
    paired: bool = False
    log_scale: bool = False  # forgetting on a perplexity probe: compared as log(after / before)

    def tied(self, label: str) -> bool:
        return self.ties is not None and label in self.ties.tied

    def describe(self) -> str:
        return self.ties.describe() if self.ties is not None and self.ties.top else "n/a (no interval)"


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


def decide(rows: pd.DataFrame, metric: str, higher_is_better: bool, items_key: str | None = None,
           alpha: float = ALPHA) -> Decision:
    """Tie set, intervals and baseline check for one model × task (rows: its finished trials)."""
    first = rows.iloc[0]
    low_col, high_col, n_col = (("quality_ci_low", "quality_ci_high", "n_eval") if metric == "quality" else
                                (f"{metric}_ci_low", f"{metric}_ci_high", "n_probe"))
    decision = Decision(first["model"], first["task"], metric, None)
    decision.log_scale = metric == "forgetting" and _perplexity_probe(rows)
    if decision.log_scale:  # compared as log(after / before); intervals are shown back on the relative scale
        rows = rows.assign(**{c: np.log1p(rows[c].astype(float)) for c in (metric, low_col, high_col) if c in rows})
    means, variances = {}, {}
    for label, group in rows.groupby("label", sort=False):
        group = group[group[metric].notna()]
        if group.empty:
            continue
        se = stats.se_from_interval(group.get(low_col, np.nan), group.get(high_col, np.nan)) \
            if low_col in group else pd.Series(np.nan, index=group.index)
        means[label], variances[label] = stats.mean_variance(group[metric], se)
        if len(group) == 1 and low_col in group and group[low_col].notna().all():
            decision.interval[label] = (float(group[low_col].iloc[0]), float(group[high_col].iloc[0]))  # its own
        elif np.isfinite(variances[label]):  # several seeds: normal interval of the mean over seeds
            half = norm.ppf(0.5 + stats.CONFIDENCE / 2) * np.sqrt(variances[label])
            decision.interval[label] = (means[label] - half, means[label] + half)
        if n_col in group and group[n_col].notna().any():
            decision.n_items[label] = int(group[n_col].max())
    scores = _items(rows[rows[metric].notna()], items_key) if items_key else None
    if scores is not None and set(scores) >= set(means):
        decision.ties, decision.paired = stats.tie_set(scores, alpha, higher_is_better), True
        decision.interval.update({label: stats.bootstrap_mean_ci(s) for label, s in scores.items()})
    elif means and np.isfinite(list(variances.values())).any():
        decision.ties = stats.tie_set_from_intervals(means, variances, alpha, higher_is_better)
    if metric == "quality" and BASELINE_COLUMN in rows and rows[BASELINE_COLUMN].notna().any():
        decision.baseline = float(rows[BASELINE_COLUMN].dropna().iloc[0])
        decision.at_baseline = _at_baseline(means, variances, decision.baseline, alpha)
        decision.unstable = {label: text for label, text in _seeds_at_baseline(rows, decision.baseline).items()
                             if label not in decision.at_baseline}
    if decision.log_scale:
        decision.interval = {label: (float(np.expm1(low)), float(np.expm1(high)))
                             for label, (low, high) in decision.interval.items()}
    return decision


def _perplexity_probe(rows: pd.DataFrame) -> bool:
    """Forgetting read on perplexity: the relative rise (after - before) / before is heavy-tailed (a model that
    collapsed reads 1e13 where others read 2), so a mean and its normal interval over seeds are dominated by one
    trial and the collapsed method cannot be shown worse than any other. log(after / before) = log1p(forgetting)
    is the scale on which such trials separate; it is monotone, so the order of trials is unchanged."""
    probe = rows["forgetting_probe"] if "forgetting_probe" in rows else pd.Series(dtype=object)
    return bool(len(probe)) and probe.eq("perplexity").all()


def _seeds_at_baseline(rows: pd.DataFrame, baseline: float) -> dict[str, str]:
    """{label: "k of n seeds"} for methods with a seed whose quality its own interval over items cannot tell from
    the majority share: a collapsed seed. Its mean over seeds can still be tied at the top, as the seeds that held
    lift it, but a user would be betting on the seed (a learning rate at the edge of stability)."""
    low = rows["quality_ci_low"].where(rows["quality_ci_low"].notna(), rows["quality"]) \
        if "quality_ci_low" in rows else rows["quality"]
    collapsed = rows.assign(collapsed=low.le(baseline))[rows["quality"].notna()]
    found = {}
    for label, group in collapsed.groupby("label", sort=False):
        if group["collapsed"].any():
            found[label] = f"{int(group['collapsed'].sum())} of {len(group)} seeds"
    return found


def unstable_names(frame: pd.DataFrame) -> str:
    """"adapter (1 of 3 seeds), ..." for the rows whose `unstable` names seeds at the baseline; "" where none."""
    if "unstable" not in frame:
        return ""
    marked = frame[frame["unstable"].map(lambda v: isinstance(v, str) and v != "")]  # NaN or "": not unstable
    return ", ".join(f"{row['label']} ({row['unstable']})" for _, row in marked.iterrows())


def _at_baseline(means: dict, variances: dict, baseline: float, alpha: float) -> list[str]:
    """Methods whose quality is not shown above the majority share: one-sided z test per method, Holm over them.
    A method without an interval cannot be shown above it either."""
    labels = list(means)
    p_values = []
    for label in labels:
        spread = np.sqrt(variances[label])
        gap = means[label] - baseline
        p_values.append(float(norm.sf(gap / spread)) if np.isfinite(spread) and spread > 0
                        else (0.0 if np.isfinite(spread) and gap > 0 else 1.0))
    above = stats.holm(p_values, alpha)
    return [label for label, ok in zip(labels, above) if not ok]


def decisions(trials: pd.DataFrame, alpha: float = ALPHA) -> dict[tuple[str, str, str], Decision]:
    """{(model, task, metric): Decision} for quality (max) and forgetting (min) over the finished trials."""
    ok = trials[trials["status"] == "ok"]
    out = {}
    for (model, task), rows in ok.groupby(["model", "task"], sort=False):
        for metric, higher, items in (("quality", True, "quality_items"), ("forgetting", False, None)):
            if rows[metric].notna().any():
                out[(model, task, metric)] = decide(rows, metric, higher, items, alpha)
    return out


def annotate(agg: pd.DataFrame, found: dict) -> pd.DataFrame:
    """Adds to the aggregate, per row: `<metric>_ci_low/high` (interval of the mean over seeds), `n_eval`,
    `<metric>_tied` (in the top tie set; NaN where undecided) and `at_baseline` (True: not distinguishable from the
    majority-class baseline; NaN: baseline unknown)."""
    agg = agg.copy()
    for metric in ("quality", "forgetting"):
        agg[f"{metric}_ci_low"], agg[f"{metric}_ci_high"] = np.nan, np.nan
        agg[f"{metric}_tied"] = pd.Series(np.nan, index=agg.index, dtype=object)
    agg["n_eval"], agg["at_baseline"] = np.nan, pd.Series(np.nan, index=agg.index, dtype=object)
    agg["unstable"] = pd.Series(np.nan, index=agg.index, dtype=object)
    agg["baseline"] = np.nan
    for index, row in agg.iterrows():
        for metric in ("quality", "forgetting"):
            decision = found.get((row["model"], row["task"], metric))
            if decision is None:
                continue
            low, high = decision.interval.get(row["label"], (np.nan, np.nan))
            agg.loc[index, [f"{metric}_ci_low", f"{metric}_ci_high"]] = [low, high]
            if decision.ties is not None and pd.notna(row[f"{metric}_mean"]):
                agg.at[index, f"{metric}_tied"] = decision.tied(row["label"])
            if metric == "quality":
                agg.at[index, "n_eval"] = decision.n_items.get(row["label"], np.nan)
                if np.isfinite(decision.baseline):
                    agg.at[index, "baseline"] = decision.baseline
                    agg.at[index, "at_baseline"] = row["label"] in decision.at_baseline
                    agg.at[index, "unstable"] = decision.unstable.get(row["label"], np.nan)
    return agg


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
    lines += [f"Tie set test: {how}." for how in hows]
    return lines
