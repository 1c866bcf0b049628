"""Coverage of the report's intervals over seeds, by simulation: pytest tests/test_coverage_sim.py

Synthetic studies of a paired difference between two methods whose true difference is 0: each seed shifts every
item by a training effect (seed spread), each item adds its own noise. The 95% interval of the mean over seeds must
cover 0 in at least 93% of 1,000 studies with 3 and with 5 seeds, where the seed spread is large against the item
noise (the regime three seeds cannot pin down), and where items dominate. Synthetic numbers only: a few seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from bench.common import stats

STUDIES = 1000
ITEMS = 200
MIN_COVERAGE = 0.93


def studies(seeds: int, seed_sd: float, item_sd: float, rng: np.random.Generator) -> np.ndarray:
    """(studies, seeds, items) per-item differences with true mean 0: a shift per seed plus noise per item."""
    return rng.normal(0, seed_sd, (STUDIES, seeds, 1)) + rng.normal(0, item_sd, (STUDIES, seeds, ITEMS))


def coverage(differences: np.ndarray) -> float:
    """Share of studies whose stats.estimate interval holds the true difference 0."""
    hits = 0
    for study in differences:
        low, high = stats.estimate(list(study)).interval()
        hits += low <= 0 <= high
    return hits / len(differences)


@pytest.mark.parametrize("seeds", [3, 5])
@pytest.mark.parametrize("seed_sd, item_sd", [(0.1, 0.3), (0.03, 0.3), (0.0, 0.3)],
                         ids=["seeds-dominate", "both", "items-dominate"])
def test_the_interval_over_seeds_covers_the_true_difference(seeds, seed_sd, item_sd):
    rng = np.random.default_rng(seeds * 1000 + int(seed_sd * 100))
    assert coverage(studies(seeds, seed_sd, item_sd, rng)) >= MIN_COVERAGE


def test_a_normal_quantile_on_three_seeds_would_not_cover():
    """The simulation can fail: the same variance with a z quantile for the seed part (what a bootstrap over three
    seeds amounts to) covers well under 93% where the seed spread is large."""
    rng = np.random.default_rng(7)
    data = studies(3, 0.1, 0.3, rng)
    means = data.mean(axis=2)
    se = np.sqrt(data.mean(axis=1).var(axis=1, ddof=1) / ITEMS + means.var(axis=1, ddof=1) / 3)
    naive = np.mean(np.abs(means.mean(axis=1)) <= sps.norm.ppf(0.975) * se)
    assert naive < MIN_COVERAGE <= coverage(data)


def test_one_study_matches_the_difference_the_report_uses():
    """stats.difference (the report's paired difference) is stats.estimate of the per-item differences."""
    rng = np.random.default_rng(3)
    a, b = rng.random((3, ITEMS)), rng.random((3, ITEMS))
    paired = stats.difference(list(a), list(b))
    direct = stats.estimate(list(a - b))
    assert paired.interval() == pytest.approx(direct.interval())
    assert paired.n_seeds == 3 and paired.n_items == ITEMS
