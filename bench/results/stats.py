"""Uncertainty of quality figures and decisions that respect it: intervals, paired tests, tie sets.

    from bench.results import stats
    stats.wilson_interval(187, 200)                        # accuracy 0.935 on 200 items -> (0.892, 0.962)
    stats.bootstrap_mean_ci(rouge_per_item)                # (low, high) of the mean, percentile bootstrap
    stats.bootstrap_macro_f1_ci(predicted_ids, label_ids)  # (low, high) of macro-F1, pairs resampled
    stats.paired_bootstrap(lora_items, full_items)         # lora - full on the same items: difference, CI, p
    stats.tie_set({"lora": [...], "full": [...], ...})     # the methods not significantly worse than the top one

Every resampling is seeded (default seed 0), so a report rebuilt from the same trials prints the same intervals
and the same tie sets. Scores are per item (1/0 for a correct/incorrect classification, a ROUGE-L per generated
text); several seeds are passed as a list with one array per seed, each seed scored on the same items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95
ALPHA = 0.05  # significance level of the tie-set comparisons, before the Holm correction
N_RESAMPLES = 2000  # enough for a 95% interval's ends to move by < 0.005 on 200 items; ~10 ms per comparison
SEED = 0


def percentile_interval(resampled: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The two-sided percentile interval of a bootstrap distribution."""
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return float(low), float(high)


def wilson_interval(successes: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion (successes of n); (nan, nan) when n is 0 or unknown.

    Wilson rather than the normal approximation because it stays inside [0, 1] and keeps its coverage near 0 and 1,
    where accuracies of good methods and of failed ones sit.
    """
    if n is None or not np.isfinite(n) or n <= 0:
        return float("nan"), float("nan")
    z = sps.norm.ppf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def _seeds(scores) -> list[np.ndarray]:
    """One float array per seed from either one array (one seed) or a sequence of arrays (several seeds)."""
    if isinstance(scores, np.ndarray) and scores.ndim == 1:
        return [scores.astype(float)]
    scores = list(scores)
    if scores and np.ndim(scores[0]) == 0:
        return [np.asarray(scores, dtype=float)]
    return [np.asarray(s, dtype=float) for s in scores]


def _resampled_means(per_seed: list[np.ndarray], n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap distribution of the mean over seeds of each seed's item mean, resampling items and seeds.

    Items: seeds scored on the same items (equal lengths) share each draw of items, since item noise does not
    average out over seeds that read the same items; seeds with items of their own are drawn apart. Seeds: each
    resample draws as many seeds as there are, with replacement, so training noise between seeds widens the
    interval too (with few seeds it is understated by (k - 1) / k in variance: three seeds read two thirds)."""
    if len({len(values) for values in per_seed}) == 1:
        picks = rng.integers(0, len(per_seed[0]), size=(n_resamples, len(per_seed[0])))
        means = np.stack([values[picks].mean(axis=1) for values in per_seed], axis=1)
    else:
        means = np.stack([values[rng.integers(0, len(values), size=(n_resamples, len(values)))].mean(axis=1)
                          for values in per_seed], axis=1)
    return mean_over_resampled_seeds(means, rng)


def mean_over_resampled_seeds(per_seed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(resamples x seeds) statistics -> (resamples,): each resample's mean over as many seeds drawn with
    replacement, so the spread between seeds counts; one seed is returned as it is."""
    if per_seed.shape[1] == 1:
        return per_seed[:, 0]
    seeds = rng.integers(0, per_seed.shape[1], size=per_seed.shape)
    return np.take_along_axis(per_seed, seeds, axis=1).mean(axis=1)


def bootstrap_mean_ci(scores, confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                      seed: int = SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean score over items (seeded; with one array per seed, items and
    seeds are both resampled: _resampled_means). (nan, nan) with no items."""
    per_seed = [s for s in _seeds(scores) if len(s)]
    if not per_seed:
        return float("nan"), float("nan")
    return percentile_interval(_resampled_means(per_seed, n_resamples, np.random.default_rng(seed)), confidence)


def _macro_f1(predictions: np.ndarray, references: np.ndarray, n_classes: int) -> np.ndarray:
    """Macro-F1 of each row of (resamples x items) label arrays, over the classes that occur in the references or
    predictions of that row (scikit-learn's macro average, zero_division=0)."""
    rows = np.arange(len(predictions))[:, None]
    def counts(labels, mask):
        out = np.zeros((len(labels), n_classes))
        np.add.at(out, (np.broadcast_to(rows, labels.shape)[mask], labels[mask]), 1)
        return out
    everything = np.ones_like(predictions, dtype=bool)
    hits = counts(references, predictions == references)
    predicted, actual = counts(predictions, everything), counts(references, everything)
    denominator = predicted + actual
    f1 = np.divide(2 * hits, denominator, out=np.zeros_like(hits), where=denominator > 0)
    present = denominator > 0
    return f1.sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def bootstrap_macro_f1_ci(predictions, references, confidence: float = CONFIDENCE,
                          n_resamples: int = N_RESAMPLES, seed: int = SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of macro-F1 over items (seeded): macro-F1 is not a mean of per-item scores,
    so the (prediction, reference) pairs are resampled and the F1 recomputed. (nan, nan) with no items."""
    predictions, references = np.asarray(predictions, dtype=int), np.asarray(references, dtype=int)
    if not len(references):
        return float("nan"), float("nan")
    picks = np.random.default_rng(seed).integers(0, len(references), size=(n_resamples, len(references)))
    n_classes = int(max(predictions.max(), references.max())) + 1
    return percentile_interval(_macro_f1(predictions[picks], references[picks], n_classes), confidence)


@dataclass(frozen=True)
class PairedResult:
    difference: float  # mean(a) - mean(b), oriented so that > 0 means a is better
    low: float  # two-sided percentile interval of the difference
    high: float
    p_value: float  # one-sided: how plausible "a is not better than b" is; small means a is better
    n_items: int  # items per seed (the smallest seed where they differ)
    n_seeds: int


def paired_bootstrap(a, b, higher_is_better: bool = True, confidence: float = CONFIDENCE,
                     n_resamples: int = N_RESAMPLES, seed: int = SEED) -> PairedResult:
    """Paired bootstrap of a against b scored on the same items: resample items (the same draw for both methods)
    and, when several seeds are given, seeds (_resampled_means), and average the per-seed mean differences.

    The p-value is the percentile-bootstrap one: (1 + #{resampled difference <= 0}) / (resamples + 1), so p < alpha
    exactly when the one-sided (1 - alpha) percentile interval of the difference lies above 0 (Koehn 2004's paired
    bootstrap resampling, without the shift; the +1s keep p above 0).
    """
    a_seeds, b_seeds = _seeds(a), _seeds(b)
    if len(a_seeds) != len(b_seeds) or any(len(x) != len(y) for x, y in zip(a_seeds, b_seeds)):
        raise ValueError("paired_bootstrap: a and b need the same seeds and the same items in each seed "
                         f"(items per seed: {[len(x) for x in a_seeds]} vs {[len(y) for y in b_seeds]})")
    sign = 1.0 if higher_is_better else -1.0
    diffs = [sign * (x - y) for x, y in zip(a_seeds, b_seeds) if len(x)]
    if not diffs:
        nan = float("nan")
        return PairedResult(nan, nan, nan, nan, 0, 0)
    observed = float(np.mean([d.mean() for d in diffs]))
    resampled = _resampled_means(diffs, n_resamples, np.random.default_rng(seed))
    low, high = percentile_interval(resampled, confidence)
    p_value = (1 + np.count_nonzero(resampled <= 0)) / (n_resamples + 1)
    return PairedResult(observed, float(low), float(high), float(p_value), min(len(d) for d in diffs), len(diffs))


def holm(p_values: Sequence[float], alpha: float = ALPHA) -> np.ndarray:
    """Holm's step-down correction: True where the hypothesis is rejected with the family-wise error kept at alpha.

    Sorted ascending, the i-th smallest p (0-based, of m) is compared with alpha / (m - i); rejection stops at the
    first that fails. A NaN p-value (no comparison possible) is never rejected and does not count toward m.
    """
    p = np.asarray(p_values, dtype=float)
    rejected = np.zeros(len(p), dtype=bool)
    known = np.flatnonzero(~np.isnan(p))
    m = len(known)
    for rank, index in enumerate(known[np.argsort(p[known], kind="stable")]):
        if p[index] > alpha / (m - rank):
            break
        rejected[index] = True
    return rejected


@dataclass
class TieSet:
    top: str | None  # the method with the best mean
    tied: list[str]  # top first, then the methods not significantly worse than it, best mean first
    p_values: dict[str, float] = field(default_factory=dict)  # one-sided p of "top is better than this method"
    worse: list[str] = field(default_factory=list)  # significantly worse than the top after Holm
    alpha: float = ALPHA
    how: str = ""  # which test decided: "paired bootstrap over n items × k seeds" or the interval fallback

    def describe(self) -> str:
        return "tied: " + ", ".join(self.tied) if len(self.tied) > 1 else (self.top or "n/a")


def _ordered(means: Mapping[str, float], higher_is_better: bool) -> list[str]:
    """Names by mean, best first (ties by name, so the order is stable), NaN means left out."""
    sign = -1.0 if higher_is_better else 1.0
    return sorted((n for n in means if np.isfinite(means[n])), key=lambda n: (sign * means[n], n))


def _decide(means: dict, p_values: dict, alpha: float, higher_is_better: bool, how: str) -> TieSet:
    order = _ordered(means, higher_is_better)
    if not order:
        return TieSet(None, [], {}, [], alpha, how)
    top, others = order[0], order[1:]
    rejected = holm([p_values[n] for n in others], alpha)
    worse = [n for n, r in zip(others, rejected) if r]
    return TieSet(top, [top] + [n for n in others if n not in worse], {n: p_values[n] for n in others}, worse,
                  alpha, how)


def tie_set(scores: Mapping[str, object], alpha: float = ALPHA, higher_is_better: bool = True,
            n_resamples: int = N_RESAMPLES, seed: int = SEED) -> TieSet:
    """The methods the data cannot separate from the best one, from per-item scores on the same items.

    `scores` maps a method to its per-item scores (one array, or one array per seed with the same seeds and items
    for every method). The top is the method with the best mean; every other method is compared with it by
    `paired_bootstrap` (one-sided: is the top better?), and the p-values are corrected with Holm over those
    comparisons, so the chance of calling any tied method worse stays at most alpha. A method stays in the tie
    set unless its comparison is rejected. Methods without scores are left out.
    """
    seeds = {name: [s for s in _seeds(v) if len(s)] for name, v in scores.items()}
    seeds = {name: s for name, s in seeds.items() if s}
    means = {name: float(np.mean([x.mean() for x in s])) for name, s in seeds.items()}
    order = _ordered(means, higher_is_better)
    if not order:
        return TieSet(None, [], alpha=alpha)
    top = order[0]
    p_values = {n: paired_bootstrap(seeds[top], seeds[n], higher_is_better, n_resamples=n_resamples,
                                    seed=seed).p_value for n in order[1:]}
    shape = seeds[top]
    how = (f"paired bootstrap over {len(shape[0])} items × {len(shape)} seed(s), one-sided, Holm-corrected over "
           f"{len(order) - 1} comparison(s) with the top, alpha {alpha:g}")
    return _decide(means, p_values, alpha, higher_is_better, how)


def se_from_interval(low: float, high: float, confidence: float = CONFIDENCE) -> float:
    """Standard error implied by a symmetric-ish interval: half its width over the normal quantile."""
    return (high - low) / (2 * sps.norm.ppf(0.5 + confidence / 2))


def mean_variance(values: Sequence[float], item_se: Sequence[float]) -> tuple[float, float]:
    """Mean over seeds and the variance of that mean when only per-trial intervals are known.

    Item noise: the seeds are scored on the same items, so it does not average out over seeds; taken as the mean
    of the squared per-trial standard errors. Seed noise: the sample variance over seeds divided by their count
    (none with one seed). Their sum is conservative (it overstates the spread rather than hides it).
    """
    values, item_se = np.asarray(values, dtype=float), np.asarray(item_se, dtype=float)
    keep = np.isfinite(values)
    values, item_se = values[keep], item_se[keep]
    if not len(values):
        return float("nan"), float("nan")
    variance = float(np.mean(item_se ** 2)) if np.isfinite(item_se).all() else float("nan")
    if len(values) > 1:
        variance += float(np.var(values, ddof=1)) / len(values)
    return float(values.mean()), variance


def tie_set_from_intervals(means: Mapping[str, float], variances: Mapping[str, float], alpha: float = ALPHA,
                           higher_is_better: bool = True) -> TieSet:
    """The fallback without per-item scores: a one-sided z test of top minus each method with the variance of
    each mean (see mean_variance), unpaired, so it ignores the positive correlation of methods scored on the same
    items and ties more methods than a paired test would; Holm-corrected like `tie_set`. A method whose variance
    is unknown cannot be shown worse and stays tied."""
    means = {n: float(m) for n, m in means.items() if m is not None and np.isfinite(m)}
    order = _ordered(means, higher_is_better)
    if not order:
        return TieSet(None, [], alpha=alpha)
    top = order[0]
    sign = 1.0 if higher_is_better else -1.0
    p_values = {}
    for name in order[1:]:
        spread = np.sqrt(variances.get(top, np.nan) + variances.get(name, np.nan))
        gap = sign * (means[top] - means[name])
        p_values[name] = float(sps.norm.sf(gap / spread)) if np.isfinite(spread) and spread > 0 else (
            0.0 if np.isfinite(spread) and gap > 0 else float("nan"))
    how = (f"z test on per-trial intervals (no per-item scores; unpaired, so conservative), one-sided, "
           f"Holm-corrected over {len(order) - 1} comparison(s) with the top, alpha {alpha:g}")
    return _decide(means, p_values, alpha, higher_is_better, how)
