"""Uncertainty of quality figures and decisions that respect it: intervals, paired tests, tie sets.

    from bench.common import stats
    stats.wilson_interval(187, 200)                        # accuracy 0.935 on 200 items -> (0.892, 0.962)
    stats.bootstrap_mean_ci(rouge_per_item)                # (low, high) of the mean, percentile bootstrap
    stats.bootstrap_macro_f1_ci(predicted_ids, label_ids)  # (low, high) of macro-F1, pairs resampled
    stats.paired_bootstrap(lora_items, full_items)         # lora - full on the same items: difference, CI, p
    stats.estimate([seed0_items, seed1_items, seed2_items]).interval()  # mean over seeds, seed part on t(k - 1)
    stats.difference(lora_seeds, full_seeds).interval()    # lora - full, paired on the same items and seeds
    stats.tie_set({"lora": [...], "full": [...], ...})     # the methods not shown worse than the best (MCB)

Every resampling is seeded (default seed 0), so a report rebuilt from the same trials prints the same intervals
and the same tie sets. Scores are per item (1/0 for a correct/incorrect classification, a ROUGE-L per generated
text); several seeds are passed as a list with one array per seed, each seed scored on the same items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np


def _scipy_stats():
    """scipy.stats on first use: importing it takes ~0.5 s, which every trial's start (and a bad input's one-line
    answer) would pay although only the figures at its end need a quantile."""
    from scipy import stats

    return stats


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
    z = _scipy_stats().norm.ppf(0.5 + confidence / 2)
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
class Estimate:
    """A mean over seeds and its two noise sources, for intervals whose seed part has k − 1 degrees of freedom.

    item_var: the variance of the seed-averaged value from the evaluated items (the same items for every seed, so it
    does not average out over seeds); seed_var: the sample variance of the per-seed values over k (training noise),
    NaN with one seed (not measured). The interval's half-width is sqrt(z² · item_var + t(k − 1)² · seed_var):
    each part at its own quantile, so three seeds that agree by luck do not pass for thirty. Chosen by the coverage
    simulation in tests/test_coverage_sim.py: at least 95% with 3 and 5 seeds where seeds dominate, items
    dominate, or both count; the paired percentile bootstrap it replaces covered 79% with 3 seeds and 87% with 5
    where seeds dominate."""
    value: float
    item_var: float
    seed_var: float
    n_items: int
    per_seed: tuple = ()
    seed_df: int | None = None  # degrees of freedom of seed_var; None: n_seeds − 1

    @property
    def n_seeds(self) -> int:
        return len(self.per_seed)

    def half_width(self, confidence: float = CONFIDENCE, one_sided: bool = False) -> float:
        tail = (1 - confidence) if one_sided else (1 - confidence) / 2
        df = self.seed_df if self.seed_df is not None else self.n_seeds - 1
        quantiles = _scipy_stats()
        item = quantiles.norm.ppf(1 - tail) ** 2 * self.item_var if np.isfinite(self.item_var) else np.nan
        seed = quantiles.t.ppf(1 - tail, df) ** 2 * self.seed_var if df >= 1 and np.isfinite(self.seed_var) else 0.0
        return float(np.sqrt(item + seed))

    def interval(self, confidence: float = CONFIDENCE) -> tuple[float, float]:
        half = self.half_width(confidence)
        return float(self.value - half), float(self.value + half)

    def shown_above(self, threshold: float, alpha: float) -> bool:
        """The one-sided (1 − alpha) lower bound lies above threshold."""
        half = self.half_width(1 - alpha, one_sided=True)
        return bool(np.isfinite(half) and self.value - half > threshold)

    def shown_below(self, threshold: float, alpha: float) -> bool:
        half = self.half_width(1 - alpha, one_sided=True)
        return bool(np.isfinite(half) and self.value + half < threshold)

    def agree(self) -> int:
        """Seeds whose own value has the sign of the estimate (0 counts as disagreeing)."""
        return int(sum(np.sign(v) == np.sign(self.value) and v != 0 for v in self.per_seed))

    def agreement(self) -> str:
        return f"{self.agree()} of {self.n_seeds} seeds agree in sign"


def estimate(scores) -> Estimate:
    """The Estimate of the mean score from per-item scores: one array, or one array per seed. Seeds on the same
    items (equal lengths): item noise is the variance over items of each item's mean over seeds, over n; seeds on
    items of their own: the mean of their item variances over k (independent draws average out)."""
    per_seed = [s for s in _seeds(scores) if len(s)]
    if not per_seed:
        return Estimate(float("nan"), float("nan"), float("nan"), 0, ())
    means = np.array([s.mean() for s in per_seed])
    k = len(per_seed)
    if len({len(s) for s in per_seed}) == 1:
        n = len(per_seed[0])
        item_var = float(np.mean(per_seed, axis=0).var(ddof=1) / n) if n > 1 else float("nan")
    else:
        n = min(len(s) for s in per_seed)
        item_var = float(sum(s.var(ddof=1) / len(s) for s in per_seed) / k ** 2)
    seed_var = float(means.var(ddof=1) / k) if k > 1 else float("nan")
    return Estimate(float(means.mean()), item_var, seed_var, n, tuple(float(m) for m in means))


def difference(a, b, higher_is_better: bool = True) -> Estimate:
    """a − b over the same items and seeds (paired), oriented so > 0 means a is better."""
    a_seeds, b_seeds = _seeds(a), _seeds(b)
    if len(a_seeds) != len(b_seeds) or any(len(x) != len(y) for x, y in zip(a_seeds, b_seeds)):
        raise ValueError("difference: a and b need the same seeds and the same items in each seed "
                         f"(items per seed: {[len(x) for x in a_seeds]} vs {[len(y) for y in b_seeds]})")
    sign = 1.0 if higher_is_better else -1.0
    return estimate([sign * (x - y) for x, y in zip(a_seeds, b_seeds) if len(x)])


def unpaired(a: Estimate, b: Estimate, sign: float = 1.0) -> Estimate:
    """sign · (a − b) of two independent estimates: variances add; the seed part keeps the fewer seeds' degrees of
    freedom (conservative where Welch's would be larger)."""
    k = min(a.n_seeds, b.n_seeds)
    seed_var = (a.seed_var if np.isfinite(a.seed_var) else 0.0) + (b.seed_var if np.isfinite(b.seed_var) else 0.0)
    known = k > 1 and (np.isfinite(a.seed_var) or np.isfinite(b.seed_var))
    per_seed = tuple(sign * (x - y) for x, y in zip(a.per_seed, b.per_seed)) or (sign * (a.value - b.value),)
    return Estimate(sign * (a.value - b.value), a.item_var + b.item_var, seed_var if known else float("nan"),
                    min(a.n_items, b.n_items), per_seed, k - 1 if known else 0)


def estimate_from_trials(values: Sequence[float], item_se: Sequence[float]) -> Estimate:
    """The Estimate of a mean over seeds when only per-trial values and their item standard errors are known: item
    noise the mean of the squared standard errors (the seeds share their items), seed noise the sample variance
    over seeds over k."""
    values, item_se = np.asarray(values, dtype=float), np.asarray(item_se, dtype=float)
    keep = np.isfinite(values)
    values, item_se = values[keep], item_se[keep]
    if not len(values):
        return Estimate(float("nan"), float("nan"), float("nan"), 0, ())
    item_var = float(np.mean(item_se ** 2)) if np.isfinite(item_se).all() else float("nan")
    seed_var = float(np.var(values, ddof=1) / len(values)) if len(values) > 1 else float("nan")
    return Estimate(float(values.mean()), item_var, seed_var, 0, tuple(float(v) for v in values))


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
    tied: list[str]  # not shown worse than the best: top first, then by mean, best first
    p_values: dict[str, float] = field(default_factory=dict)  # unused by the MCB set; kept for callers that print it
    worse: list[str] = field(default_factory=list)  # shown worse than another method (so not the best)
    alpha: float = ALPHA
    how: str = ""  # which procedure decided, with items, seeds and the per-comparison level
    n_seeds: int = 0  # seeds behind the set (the fewest of any member); 1: training noise not measured
    beaten_by: dict[str, str] = field(default_factory=dict)  # worse method -> a method shown better than it

    def describe(self) -> str:
        if not self.top:
            return "n/a"
        text = "not shown worse than the best: " + ", ".join(self.tied)
        return text + (" (1 seed: training noise between runs not measured)" if self.n_seeds == 1 else "")


def _ordered(means: Mapping[str, float], higher_is_better: bool) -> list[str]:
    """Names by mean, best first (ties by name, so the order is stable), NaN means left out."""
    sign = -1.0 if higher_is_better else 1.0
    return sorted((n for n in means if np.isfinite(means[n])), key=lambda n: (sign * means[n], n))


def best_set(estimates: Mapping[str, Estimate], differences, alpha: float = ALPHA, higher_is_better: bool = True,
             how: str = "") -> TieSet:
    """Multiple comparisons with the best (Hsu 1984, here with a Bonferroni critical value): method i is shown worse
    than the best when some other method j is shown better than it, j − i's one-sided lower bound at alpha / (m − 1)
    above 0. Every method is compared with every other, not with the observed top alone, so the set of methods left
    (not shown worse than the best) holds the truly best one with probability at least 1 − alpha: picking the top
    from the same data is accounted for. `differences(j, i)` is the Estimate of j − i, oriented so > 0 means j is
    better."""
    means = {n: e.value for n, e in estimates.items()}
    order = _ordered(means, higher_is_better)
    if not order:
        return TieSet(None, [], alpha=alpha, how=how)
    level = alpha / max(len(order) - 1, 1)
    beaten = {}
    for i in order[1:]:
        for j in order:
            if j != i and differences(j, i).shown_above(0.0, level):
                beaten[i] = j
                break
    tied = [n for n in order if n not in beaten]
    seeds = min(estimates[n].n_seeds for n in order)
    how = how or "multiple comparisons with the best"
    how += (f"; each method against every other, one-sided at alpha / (m − 1) = {alpha:g} / {len(order) - 1}"
            if len(order) > 1 else "")
    return TieSet(order[0], tied, {}, [n for n in order if n in beaten], alpha, how, seeds, beaten)


def tie_set(scores: Mapping[str, object], alpha: float = ALPHA, higher_is_better: bool = True,
            n_resamples: int = N_RESAMPLES, seed: int = SEED) -> TieSet:
    """The methods not shown worse than the best, from per-item scores on the same items (best_set over paired
    differences: each pair's difference over the same items and seeds, its seed part on k − 1 degrees of freedom).

    `scores` maps a method to its per-item scores (one array, or one array per seed with the same seeds and items
    for every method). Methods without scores are left out. (n_resamples and seed: kept for callers; the intervals
    are analytic.)"""
    seeds = {name: [s for s in _seeds(v) if len(s)] for name, v in scores.items()}
    seeds = {name: s for name, s in seeds.items() if s}
    if not seeds:
        return TieSet(None, [], alpha=alpha)
    estimates = {name: estimate(s) for name, s in seeds.items()}
    cache = {}

    def differences(j, i):
        if (j, i) not in cache:
            cache[(j, i)] = difference(seeds[j], seeds[i], higher_is_better)
        return cache[(j, i)]

    shape = next(iter(seeds.values()))
    how = (f"multiple comparisons with the best over {len(shape[0])} items × {len(shape)} seed(s), paired on the "
           "same items and seeds")
    return best_set(estimates, differences, alpha, higher_is_better, how)


def se_from_interval(low: float, high: float, confidence: float = CONFIDENCE) -> float:
    """Standard error implied by a symmetric-ish interval: half its width over the normal quantile."""
    return (high - low) / (2 * _scipy_stats().norm.ppf(0.5 + confidence / 2))


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
                           higher_is_better: bool = True, seeds: Mapping[str, int] | None = None) -> TieSet:
    """The fallback without per-item scores: best_set over unpaired differences of means whose variance is known
    (see mean_variance; `seeds`: each mean's seed count, its variance then read as seed noise on k − 1 degrees of
    freedom; without it, as item noise). Unpaired, so it ignores the positive correlation of methods scored on the
    same items and ties more methods than a paired test would. A method whose variance is unknown cannot be shown
    worse and stays in the set."""
    means = {n: float(m) for n, m in means.items() if m is not None and np.isfinite(m)}
    estimates = {}
    for name, mean in means.items():
        k = int(seeds[name]) if seeds else 1
        variance = float(variances.get(name, np.nan))
        estimates[name] = Estimate(mean, 0.0 if seeds else variance, variance if seeds and k > 1 else
                                   (0.0 if seeds else np.nan), 0, (mean,) * k)
    sign = 1.0 if higher_is_better else -1.0

    def differences(j, i):
        return unpaired(estimates[j], estimates[i], sign)

    how = ("multiple comparisons with the best on per-trial intervals (no per-item scores; unpaired, so "
           "conservative)" if not seeds else "multiple comparisons with the best on the spread over seeds")
    return best_set(estimates, differences, alpha, higher_is_better, how)
