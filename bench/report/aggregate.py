"""Mean ± std over seeds, with the seed count, and the rows best per column within the noise.

Only finished (`ok`) trials are aggregated; failed and skipped ones are listed by the report, not averaged in.
std is the sample standard deviation (ddof=1): NaN with one seed, which prints as the mean alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.common.families import family_rank
from bench.common import stats
from bench.results.metrics import METRICS, QUALITY_METRICS

KEYS = ["model", "task", "family", "method", "label"]
# figures the report divides by full fine-tuning's: their mean over seeds is geometric (`<col>_gmean`), so a ratio of
# two is the ratio of typical values, not pulled by one slow or large seed
RATIO_COLUMNS = ["peak_mem_bytes", "train_tokens_per_s", "checkpoint_bytes", "latency_ms_p50", "latency_ms_p50_merged"]


def ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows by model (smallest first), task, family in taxonomy order, then method label."""
    params = "total_params_mean" if "total_params_mean" in frame else "total_params"
    size = frame.groupby("model")[params].transform("min")
    return (frame.assign(_size=size, _family=frame["family"].map(family_rank))
            .sort_values(["_size", "model", "task", "_family", "label"])
            .drop(columns=["_size", "_family"]).reset_index(drop=True))


def aggregate(trials: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """One row per model × task × method variant: `<col>_mean`, `<col>_std`, `<col>_n`, `n_seeds`, and
    `<col>_gmean` (geometric mean over seeds) for the RATIO_COLUMNS."""
    columns = columns or [c for c in [*METRICS, *QUALITY_METRICS] if c in trials]
    ok = trials[trials["status"] == "ok"]
    if ok.empty:
        return pd.DataFrame(columns=[*KEYS, "n_seeds", "quality_metric"])
    grouped = ok.groupby(KEYS, sort=False, dropna=False)
    stats = grouped[columns].agg(["mean", "std", "count"])
    stats.columns = [f"{col}_{'n' if stat == 'count' else stat}" for col, stat in stats.columns]
    missing = {c: None for c in ("timed_alone", "learning_rate_chosen_for_model") if c not in ok}
    if missing:
        ok = ok.assign(**missing)
        grouped = ok.groupby(KEYS, sort=False, dropna=False)
    extra = grouped.agg(n_seeds=("seed", "size"), quality_metric=("quality_metric", "first"),
                        timed_alone_all=("timed_alone", lambda v: bool(len(v)) and all(x is True for x in v)),
                        # a seed whose rate was borrowed from another model's search, or typed in
                        rate_not_chosen=("learning_rate_chosen_for_model", lambda v: any(x is False for x in v)),
                        can_merge=("can_merge", "first"), mem_source=("mem_source", "first"),
                        forgetting_probe=("forgetting_probe", "first"))
    positive = [c for c in RATIO_COLUMNS if c in ok]
    logs = ok[KEYS].assign(**{c: np.log(ok[c].where(ok[c] > 0)) for c in positive})
    gmeans = np.exp(logs.groupby(KEYS, sort=False, dropna=False)[positive].mean()).add_suffix("_gmean")
    return ordered(pd.concat([stats, extra, gmeans], axis=1).copy().reset_index()).copy()  # copy: one block per dtype


# the same for every seed by construction: the best value is the best whatever the seed count
DETERMINISTIC = {"trainable_params", "trainable_fraction", "checkpoint_bytes", "total_params"}
# speed and latency: a verdict only from trials timed alone (nothing else running beside them)
TIMED = {"train_tokens_per_s", "train_samples_per_s", "train_seconds", "mfu", "latency_ms_p50", "latency_ms_p90",
         "latency_ms_p50_merged"}
MIN_SEEDS = 3  # fewer seeds cannot show training noise: no mark on a measured column


def best_marks(agg: pd.DataFrame, columns: list[str], by: tuple[str, ...] = ("model", "task")) -> pd.DataFrame:
    """True where a row is among the best of its column within its group, never by a difference below the noise:
    - the set not shown worse than the best where the aggregate carries one (`<column>_tied`, from
      uncertainty.annotate: quality and forgetting, over items and seeds); an undecided group gets no mark;
    - else the rows not shown worse than the best mean over seeds (multiple comparisons with the best on std /
      sqrt(seeds), t on seeds − 1), among rows with at least three seeds, or any seed count for a column that is
      the same for every seed (trainable parameters, checkpoint bytes: the best value, equal values all marked);
    - speed and latency columns: only rows whose every trial was timed alone. NaN never best."""
    marks = pd.DataFrame(False, index=agg.index, columns=columns)
    for column in columns:
        better = METRICS[column].better if column in METRICS else "max"
        if better is None or agg[f"{column}_mean"].isna().all():
            continue
        if f"{column}_tied" in agg:
            marks[column] = agg[f"{column}_tied"].eq(True)
            continue
        eligible = agg.index.to_series().map(lambda _: True)
        if column not in DETERMINISTIC:
            eligible &= agg[f"{column}_n"].ge(MIN_SEEDS)
        if column in TIMED:
            eligible &= agg.get("timed_alone_all", pd.Series(False, index=agg.index)).eq(True)
        for _, group in agg[eligible].groupby(list(by), sort=False):
            marks.loc[group.index, column] = seed_ties(group, column, better == "max")
    return marks


def seed_ties(group: pd.DataFrame, column: str, higher_is_better: bool) -> pd.Series:
    """The rows not shown worse than the best mean over seeds (uncertainty.unstable rows never)."""
    unstable = group["unstable"].map(lambda v: isinstance(v, str) and v != "") if "unstable" in group else None
    group = group[~unstable] if unstable is not None else group
    means = group[f"{column}_mean"]
    std, n = group[f"{column}_std"], group[f"{column}_n"]
    variance = (std ** 2 / n).where((n > 1) & std.notna(), 0.0)  # no spread known: the value decides
    ties = stats.tie_set_from_intervals(dict(zip(group.index, means)), dict(zip(group.index, variance)),
                                        higher_is_better=higher_is_better,
                                        seeds=dict(zip(group.index, n.fillna(1).astype(int).clip(lower=1))))
    return group.index.to_series().isin(ties.tied).reindex(unstable.index if unstable is not None else group.index,
                                                            fill_value=False)
