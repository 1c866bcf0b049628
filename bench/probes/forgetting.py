"""Forgetting and its uncertainty, from the probe's per-item scores on the base model and on the tuned one.

The interval is a paired percentile bootstrap over probe items: each resample draws the same items for before and
after (seeded, so a rerun prints the same interval) and recomputes both scores and their relative loss.
Perplexity pools its items by tokens (exp of the token-weighted mean NLL); recall@1 is the mean hit.
The perplexity probe's windows come several to a topic, so neighbouring items are not fully independent: the
interval is, if anything, a little narrow.
"""

from __future__ import annotations

import math

import numpy as np

from bench.common.stats import CONFIDENCE, N_RESAMPLES, SEED, mean_over_resampled_seeds, percentile_interval
from bench.probes.score import relative_loss


def _scores(items: np.ndarray, weights: np.ndarray, picks: np.ndarray, pooled_exp: bool) -> np.ndarray:
    """The probe score of each resample (rows of picks)."""
    w = weights[picks]
    mean = (items[picks] * w).sum(axis=1) / w.sum(axis=1)
    return np.exp(mean) if pooled_exp else mean


def interval(before: list[float], after: list[float], weights: list[int] | None, higher_is_better: bool,
             confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES, seed: int = SEED):
    """(low, high) of the relative loss; (None, None) when the items do not pair up."""
    if not before or len(before) != len(after):
        return None, None
    w = np.asarray(weights, dtype=float) if weights else np.ones(len(before))
    picks = np.random.default_rng(seed).integers(0, len(before), size=(n_resamples, len(before)))
    loss = _loss({"before": before, "after": after}, w, picks, higher_is_better)
    loss = loss[np.isfinite(loss)]
    return percentile_interval(loss, confidence) if len(loss) else (None, None)


def _relative_loss(before: np.ndarray, after: np.ndarray, higher_is_better: bool) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return (before - after) / before if higher_is_better else (after - before) / before


def _loss(side: dict, weights: np.ndarray, picks: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Relative loss of one trial's probe ({"before", "after"} items) for each resample (rows of picks)."""
    pooled_exp = not higher_is_better  # perplexity: items are mean NLLs, the score is exp of their pooled mean
    before, after = (np.asarray(side[key], dtype=float) for key in ("before", "after"))
    return _relative_loss(_scores(before, weights, picks, pooled_exp), _scores(after, weights, picks, pooled_exp),
                          higher_is_better)


def difference_interval(runs: list[tuple[dict, dict]], higher_is_better: bool, confidence: float = CONFIDENCE,
                        n_resamples: int = N_RESAMPLES, seed: int = SEED) -> tuple[float, float, float] | None:
    """Forgetting of method a minus method b, (difference, low, high), paired over the same probe items and seeds.

    `runs`: one (a, b) per seed, each {"before", "after", "weights"} item lists on the same probe items. Each
    resample draws one set of items for every seed and both methods, recomputes each side's relative loss, and
    averages the differences over seeds drawn with replacement. None where the items do not pair up."""
    lengths = {len(side.get(key) or []) for pair in runs for side in pair for key in ("before", "after")}
    if len(lengths) != 1 or 0 in lengths:
        return None
    (n_items,) = lengths
    picks = np.random.default_rng(seed).integers(0, n_items, size=(n_resamples, n_items))
    whole = np.arange(n_items)[None, :]  # the items as observed: one "resample" of every item once
    observed, resampled = [], []
    for a, b in runs:
        weights = np.asarray(a.get("weights") or b.get("weights") or np.ones(n_items), dtype=float)
        losses = [_loss(a, weights, rows, higher_is_better) - _loss(b, weights, rows, higher_is_better)
                  for rows in (whole, picks)]
        observed.append(float(losses[0][0]))
        resampled.append(losses[1])
    spread = mean_over_resampled_seeds(np.stack(resampled, axis=1), np.random.default_rng(seed + 1))
    spread = spread[np.isfinite(spread)]
    if not len(spread):
        return None
    return float(np.mean(observed)), *percentile_interval(spread, confidence)


def metrics(probe, before: dict, after) -> dict:
    """The record's forgetting columns from the cached base result (dict) and the tuned model's ProbeScore."""
    low, high = interval(before.get("items") or [], after.items, after.weights or before.get("weights"),
                         probe.higher_is_better)
    value = relative_loss(before["score"], after.value, probe.higher_is_better)
    return {
        "probe_after": after.value,
        "forgetting_probe": probe.name,
        "forgetting": value if value is None or math.isfinite(value) else None,
        "forgetting_ci_low": low,
        "forgetting_ci_high": high,
        "n_probe": len(after.items),
    }
