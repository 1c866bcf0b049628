"""Statistics behind every interval and tie set of the report: .venv/bin/python -m pytest -q tests/test_stats.py

Known values (Wilson from its closed form, Holm on a textbook example), coverage checks on simulated data with a
known truth, and the decisions: methods apart by less than the noise are tied, methods clearly apart are not.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from bench.common import stats


def test_wilson_matches_known_values():
    assert stats.wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-4)
    assert stats.wilson_interval(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-4)
    # by hand from the closed form
    assert stats.wilson_interval(187, 200) == pytest.approx((0.89198, 0.96162), abs=1e-4)
    low, high = stats.wilson_interval(10, 10)
    assert high == pytest.approx(1.0) and high <= 1.0 and 0.69 < low < 0.73  # stays inside [0, 1]
    assert np.isnan(stats.wilson_interval(3, 0)).all() and np.isnan(stats.wilson_interval(3, None)).all()


def test_wilson_narrows_with_more_items():
    widths = [np.subtract(*stats.wilson_interval(0.8 * n, n)[::-1]) for n in (50, 200, 800)]
    assert widths[0] > widths[1] > widths[2]
    assert widths[1] / widths[2] == pytest.approx(2.0, rel=0.05)  # 1/sqrt(n)


def test_bootstrap_ci_is_seeded_and_covers_the_truth():
    rng = np.random.default_rng(1)
    first = stats.bootstrap_mean_ci(rng.random(200))
    again = stats.bootstrap_mean_ci(np.random.default_rng(1).random(200))
    assert first == again  # same items, same seed: the same interval on every rebuild
    covered = 0
    for _ in range(200):
        items = rng.binomial(1, 0.7, size=150).astype(float)
        low, high = stats.bootstrap_mean_ci(items, n_resamples=500)
        covered += low <= 0.7 <= high
    assert 0.90 <= covered / 200 <= 0.99  # a 95% interval


def test_bootstrap_ci_of_a_proportion_is_close_to_wilson():
    items = np.r_[np.ones(170), np.zeros(30)]
    assert stats.bootstrap_mean_ci(items) == pytest.approx(stats.wilson_interval(170, 200), abs=0.012)


def test_macro_f1_interval_recomputes_sklearns_f1_and_holds_it():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(3)
    references = rng.integers(0, 5, size=300)
    predictions = np.where(rng.random(300) < 0.8, references, rng.integers(0, 5, size=300))
    one_resample = stats._macro_f1(predictions[None, :], references[None, :], 5)[0]
    assert one_resample == pytest.approx(f1_score(references, predictions, average="macro"), abs=1e-12)
    low, high = stats.bootstrap_macro_f1_ci(predictions, references)
    assert low < f1_score(references, predictions, average="macro") < high
    assert 0.04 < high - low < 0.15  # about +-1.96 * sqrt(0.8 * 0.2 / 300) wide
    assert stats.bootstrap_macro_f1_ci(predictions, references) == (low, high)  # seeded
    assert np.isnan(stats.bootstrap_macro_f1_ci([], [])).all()


def test_bootstrap_over_seeds_averages_seed_means_and_widens_with_seed_noise():
    agreeing = [np.full(50, 0.7), np.full(80, 0.7)]  # no item noise, no seed noise: the average itself
    assert stats.bootstrap_mean_ci(agreeing) == pytest.approx((0.7, 0.7))
    disagreeing = [np.full(50, 0.6), np.full(80, 0.8)]  # no item noise, but seeds 0.2 apart: the mean is unsure
    assert stats.bootstrap_mean_ci(disagreeing) == pytest.approx((0.6, 0.8))
    assert np.isnan(stats.bootstrap_mean_ci([])).all()


def test_seeds_on_the_same_items_share_the_items_noise():
    """Three seeds that score the same items alike: item noise does not shrink by a third, as it would if each
    seed had items of its own."""
    items = np.random.default_rng(6).binomial(1, 0.8, size=200).astype(float)
    one_low, one_high = stats.bootstrap_mean_ci(items)
    low, high = stats.bootstrap_mean_ci([items, items.copy(), items.copy()])
    assert (high - low) == pytest.approx(one_high - one_low, rel=0.1)


def test_paired_test_sees_a_small_consistent_gain_that_unpaired_intervals_cannot():
    rng = np.random.default_rng(2)
    hard = rng.random(300)  # item difficulty shared by both methods: the point of pairing
    a = (hard > 0.25).astype(float)  # a gets every item b gets, plus 15 more
    b = (hard > 0.30).astype(float)
    result = stats.paired_bootstrap(a, b)
    assert result.difference == pytest.approx(a.mean() - b.mean())
    assert result.p_value < 0.01 and result.low > 0
    a_low, _ = stats.wilson_interval(a.sum(), len(a))
    _, b_high = stats.wilson_interval(b.sum(), len(b))
    assert a_low < b_high  # the separate intervals overlap


def test_paired_test_direction_and_equal_methods():
    rng = np.random.default_rng(3)
    a = rng.random(100)
    assert stats.paired_bootstrap(a, a).p_value == 1.0  # identical: never "better"
    worse = stats.paired_bootstrap(a - 0.2, a)
    assert worse.difference == pytest.approx(-0.2) and worse.p_value == 1.0
    loss = stats.paired_bootstrap(a - 0.2, a, higher_is_better=False)  # lower is better: a - 0.2 wins
    assert loss.difference == pytest.approx(0.2) and loss.p_value < 0.001
    with pytest.raises(ValueError, match="same items"):
        stats.paired_bootstrap(a, a[:50])


def test_paired_test_pools_seeds():
    rng = np.random.default_rng(4)
    a = [rng.normal(0.52, 0.2, 100) for _ in range(3)]
    b = [x - 0.02 + rng.normal(0, 0.05, 100) for x in a]
    pooled = stats.paired_bootstrap(a, b)
    assert pooled.n_seeds == 3 and pooled.n_items == 100
    assert pooled.difference == pytest.approx(np.mean([(x - y).mean() for x, y in zip(a, b)]))
    one = stats.paired_bootstrap(a[0], b[0])
    assert (pooled.high - pooled.low) < (one.high - one.low)  # three seeds: a narrower interval than one


def test_holm_matches_a_worked_example():
    # p sorted: 0.01 <= 0.05/4, 0.015 <= 0.05/3, 0.03 > 0.05/2 stops: the first two only
    assert list(stats.holm([0.03, 0.01, 0.2, 0.015])) == [False, True, False, True]
    assert list(stats.holm([0.04, 0.04])) == [False, False]  # each < 0.05 alone, not after correction
    assert list(stats.holm([0.001, np.nan])) == [True, False]  # NaN: no comparison, never rejected, m = 1
    assert list(stats.holm([])) == []


def _classifier(rng, hard, accuracy, noise=0.0):
    """Per-item 1/0 on shared items: correct where the item is easier than the method's accuracy."""
    return ((hard + rng.normal(0, noise, len(hard))) < accuracy).astype(float)


def test_methods_apart_by_less_than_the_noise_are_tied():
    rng = np.random.default_rng(5)
    # each method's errors fall on its own items: 1-2 points apart on 200 items is inside the noise
    scores = {name: rng.binomial(1, p, 200).astype(float)
              for name, p in {"dora": 0.95, "lora": 0.94, "full": 0.93, "prompt": 0.40}.items()}
    result = stats.tie_set(scores)
    assert result.top in {"dora", "lora", "full"}
    assert set(result.tied) == {"dora", "lora", "full"} and result.worse == ["prompt"]
    assert result.describe().startswith("not shown worse than the best: ") and "200 items" in result.how
    assert "multiple comparisons with the best" in result.how and "1 seed" in result.describe()


def test_methods_apart_clearly_are_not_tied():
    rng = np.random.default_rng(6)
    hard = rng.random(400)
    result = stats.tie_set({"a": [_classifier(rng, hard, 0.90, 0.05) for _ in range(3)],
                            "b": [_classifier(rng, hard, 0.75, 0.05) for _ in range(3)]})
    assert result.tied == ["a"] and result.worse == ["b"] and result.describe().endswith(": a")
    assert "3 seed(s)" in result.how


def test_tie_set_lower_is_better_and_missing_methods():
    rng = np.random.default_rng(7)
    base = rng.random(100)
    result = stats.tie_set({"low": base, "high": base + 0.5, "none": []}, higher_is_better=False)
    assert result.tied == ["low"] and "none" not in result.tied + result.worse
    assert stats.tie_set({}).top is None


def test_interval_fallback_ties_within_noise_and_separates_clear_gaps():
    se = stats.se_from_interval(*stats.wilson_interval(187, 200))  # ~0.017 on 200 items
    assert se == pytest.approx(np.sqrt(0.935 * 0.065 / 200), rel=0.15)
    var = se ** 2
    close = stats.tie_set_from_intervals({"dora": 0.97, "adapter-parallel": 0.935, "full": 0.925, "vera": 0.60},
                                         {"dora": var, "adapter-parallel": var, "full": var, "vera": var})
    assert close.tied == ["dora", "adapter-parallel", "full"] and close.worse == ["vera"]
    assert "unpaired" in close.how
    unknown = stats.tie_set_from_intervals({"a": 0.9, "b": 0.5}, {"a": float("nan"), "b": 0.0001})
    assert unknown.tied == ["a", "b"]  # no spread known for the top: nothing can be shown worse


def test_mean_variance_adds_item_and_seed_noise():
    mean, var = stats.mean_variance([0.8, 0.9, 1.0], [0.01, 0.01, 0.01])
    assert mean == pytest.approx(0.9)
    assert var == pytest.approx(0.01 ** 2 + 0.01 / 3)
    mean, var = stats.mean_variance([0.8, float("nan")], [0.02, 0.5])
    assert (mean, var) == pytest.approx((0.8, 0.0004))


def test_the_best_set_compares_every_method_with_every_other_not_only_with_the_observed_top():
    """b sits between a and c: a is not shown better than b, but c is. Comparing with the observed top alone would
    keep b; multiple comparisons with the best drops it, and its reason names c."""
    estimates = {"a": stats.Estimate(0.90, 0.03 ** 2, 0.0, 200, (0.9,) * 3),
                 "c": stats.Estimate(0.89, 0.0001 ** 2, 0.0, 200, (0.89,) * 3),
                 "b": stats.Estimate(0.86, 0.0001 ** 2, 0.0, 200, (0.86,) * 3)}
    result = stats.best_set(estimates, lambda j, i: stats.unpaired(estimates[j], estimates[i]))
    assert result.tied == ["a", "c"] and result.beaten_by == {"b": "c"}
    assert not stats.unpaired(estimates["a"], estimates["b"]).shown_above(0.0, 0.025)


def test_an_interval_over_three_seeds_uses_two_degrees_of_freedom_for_the_seed_part():
    """Per-seed differences from the study (LoRA − full forgetting, minilm-l6): three seeds agree in sign, but on
    two degrees of freedom the interval reaches past 0, as a t interval over the seeds does."""
    per_seed = [-0.115, -0.093, -0.319]
    result = stats.estimate([np.full(256, v) for v in per_seed])
    t_low, t_high = sps.t.interval(0.95, 2, np.mean(per_seed), np.std(per_seed, ddof=1) / np.sqrt(3))
    assert result.interval() == pytest.approx((t_low, t_high), abs=1e-9)
    assert result.interval()[1] > 0 and result.agreement() == "3 of 3 seeds agree in sign"
