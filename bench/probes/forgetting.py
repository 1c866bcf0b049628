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

from bench.results.stats import CONFIDENCE, N_RESAMPLES, SEED


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
    b, a = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    w = np.asarray(weights, dtype=float) if weights else np.ones(len(b))
    picks = np.random.default_rng(seed).integers(0, len(b), size=(n_resamples, len(b)))
    pooled_exp = not higher_is_better  # perplexity: items are mean NLLs, the score is exp of their pooled mean
    sb, sa = _scores(b, w, picks, pooled_exp), _scores(a, w, picks, pooled_exp)
    with np.errstate(divide="ignore", invalid="ignore"):
        loss = (sb - sa) / sb if higher_is_better else (sa - sb) / sb
    loss = loss[np.isfinite(loss)]
    if not len(loss):
        return None, None
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(loss, [tail, 100 - tail])
    return float(low), float(high)


def metrics(probe, before: dict, after) -> dict:
    """The record's forgetting columns from the cached base result (dict) and the tuned model's ProbeScore."""
    from bench.probes import relative_loss

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
