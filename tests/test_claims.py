"""Published findings checked against a sweep: verdicts follow the intervals, never the raw difference.

pytest tests/test_claims.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.probes import forgetting
from bench.report import claims

SEEDS = (0, 1, 2)
N_ITEMS = 400


def _trial(method, seed, correct, latency_ms, merged_ms=None, probe_after=None, fraction=0.01, alone=True):
    probe_before = [1.0] * 64
    return {"model": "m", "task": "t", "method": method, "label": method, "seed": seed, "status": "ok",
            "timed_alone": alone,
            "quality_metric": "accuracy", "quality_items": np.asarray(correct, dtype=float),
            "latency_ms_p50": latency_ms, "latency_ms_p50_merged": merged_ms, "trainable_fraction": fraction,
            "forgetting_probe": "retrieval_recall@1",
            "probe_items": None if probe_after is None else {"before": probe_before, "after": probe_after,
                                                               "weights": None}}


def _sweep(lora_gap: float, prompt_gap: float, lora_forgets: int, full_forgets: int) -> pd.DataFrame:
    """full, lora, prompt-tuning and an adapter on the same items: lora and prompt tuning get `gap` fewer items
    right than full (negative: more), and each method forgets that many of 64 probe pairs."""
    rng = np.random.default_rng(0)
    hard = rng.random(N_ITEMS)
    rows = []
    for seed in SEEDS:
        jitter = 1 + 0.01 * (seed - 1)  # latency moves by 1% between seeds
        forgets = lambda n: [0.0] * n + [1.0] * (64 - n)  # noqa: E731
        rows += [_trial("full", seed, hard < 0.9, 100 * jitter, 100 * jitter, forgets(full_forgets), 1.0),
                 _trial("lora", seed, hard < 0.9 - lora_gap, 130 * jitter, 100.5 * jitter, forgets(lora_forgets),
                        0.0033),
                 _trial("prompt-tuning", seed, hard < 0.9 - prompt_gap, 125 * jitter),
                 _trial("adapter-houlsby", seed, hard < 0.9, 120 * jitter)]
    return pd.DataFrame(rows)


def _verdicts(lines):
    return {line.split(": ")[1].split(":")[0]: line for line in lines}


NOT_WORSE = "LoRA is not worse than full fine-tuning by more than 0.02 accuracy, with under 1% of the parameters"
PROMPT_WORSE = "Prompt tuning is worse than full fine-tuning at this scale (difference below 0)"


def test_tied_lora_is_not_worse_than_full_and_a_clear_gap_is():
    tied = " ".join(claims.check(_sweep(0.005, 0.2, 10, 10)))
    assert f"{NOT_WORSE} trainable: **reproduced**" in tied  # 0.5 points apart: within the 2-point margin
    assert f"{PROMPT_WORSE}: **reproduced**" in tied and "3 of 3 seeds agree in sign" in tied
    assert "learns less (quality difference below 0: **not separable**)" in tied  # inside the noise
    apart = " ".join(claims.check(_sweep(0.15, -0.0, 10, 10)))
    assert f"{NOT_WORSE} trainable: **not reproduced**" in apart
    assert "learns less (quality difference below 0: **reproduced**)" in apart
    assert f"{PROMPT_WORSE}: **not reproduced**" in apart  # as good as full


def test_both_halves_of_the_lora_claim_are_checked():
    """Quality within the margin but 3% of the parameters trainable: the claim does not hold."""
    sweep = _sweep(0.005, 0.2, 10, 10)
    sweep.loc[sweep["method"].eq("lora"), "trainable_fraction"] = 0.03
    assert f"{NOT_WORSE} trainable: **not reproduced**" in " ".join(claims.check(sweep))
    assert "not under 1% on every seed" in " ".join(claims.check(sweep))


def test_fewer_than_three_seeds_give_no_verdict_stronger_than_not_separable():
    sweep = _sweep(0.15, 0.2, 2, 20)
    two = " ".join(claims.check(sweep[sweep["seed"] < 2]))
    assert "**reproduced**" not in two and "**not reproduced**" not in two
    assert "2 seed(s)" in two


def test_latency_verdicts_need_trials_timed_alone():
    sweep = _sweep(0.0, 0.0, 10, 10)
    sweep["timed_alone"] = None  # records from before concurrency was recorded
    found = " ".join(claims.check(sweep))
    assert "Merged LoRA is not slower than full fine-tuning by more than 5%: **not timed alone**" in found
    assert "**reproduced**" not in found.split("Adapters")[1].split(".")[0]


def test_latency_verdicts_follow_the_ratio_and_its_unpaired_interval():
    found = " ".join(claims.check(_sweep(0.0, 0.0, 10, 10)))
    assert "Merged LoRA is not slower than full fine-tuning by more than 5%: **reproduced**" in found  # 1.005x
    assert "adapter-houlsby 1.20 [" in found and "prompt-tuning 1.25 [" in found  # 1% spread
    assert found.count(": **reproduced**") >= 3 and "(3 trials per side)" in found


def test_forgetting_difference_is_paired_over_probe_items_and_seeds():
    found = " ".join(claims.check(_sweep(0.0, 0.0, lora_forgets=2, full_forgets=20)))
    assert "forgets less (forgetting difference below 0: **reproduced**)" in found
    same = " ".join(claims.check(_sweep(0.0, 0.0, lora_forgets=10, full_forgets=11)))
    assert "forgets less (forgetting difference below 0: **not separable**)" in same  # one pair of 64 apart
    more = " ".join(claims.check(_sweep(0.0, 0.0, lora_forgets=30, full_forgets=5)))
    assert "forgets less (forgetting difference below 0: **not reproduced**)" in more


def test_forgetting_difference_interval_holds_the_observed_difference_and_needs_paired_items():
    rng = np.random.default_rng(1)
    before = list(rng.uniform(2.0, 4.0, 64))  # per-window mean NLLs of a perplexity probe
    a = {"before": before, "after": list(before + rng.uniform(0.0, 0.2, 64)), "weights": [2] * 64}
    b = {"before": before, "after": list(before + rng.uniform(0.3, 0.7, 64)), "weights": [2] * 64}
    value, low, high = forgetting.difference_interval([(a, b)], higher_is_better=False)
    assert low <= value <= high and value < 0  # a's perplexity rose less: it forgets less
    assert forgetting.difference_interval([(a, {**b, "after": b["after"][:10]})], higher_is_better=False) is None


def test_a_sweep_without_full_fine_tuning_checks_nothing():
    sweep = _sweep(0.0, 0.0, 10, 10)
    assert claims.check(sweep[sweep["method"] != "full"]) == []


def test_forgetting_on_perplexity_is_compared_as_log_after_over_before():
    """Per window, mean NLL before and after: lora's perplexity ratio is e^0.1, full's e^0.5, so LoRA − full on
    log(after / before) is exactly −0.4 on every seed, whatever the raw relative rises (0.105 vs 0.649)."""
    before = list(np.linspace(2.0, 4.0, 64))

    def side(shift):
        return {"before": before, "after": [b + shift for b in before], "weights": [3] * 64}

    rows = pd.DataFrame([{"seed": s, "forgetting_probe": "perplexity", "probe_items": side(0.1)}
                         for s in SEEDS]).set_index("seed")
    full = pd.DataFrame([{"seed": s, "forgetting_probe": "perplexity", "probe_items": side(0.5)}
                         for s in SEEDS]).set_index("seed")
    result = claims.forgetting_difference(rows, full)
    assert result.value == pytest.approx(-0.4) and result.agree == "3 of 3 seeds agree in sign"


def test_latency_ratios_do_not_pair_trials_by_seed():
    """The training seed has nothing to do with a latency: reordering one side's seeds leaves the interval as it is."""
    sweep = _sweep(0.0, 0.0, 10, 10)
    lora, full = claims._rows(sweep, "lora"), claims._rows(sweep, "full")
    shuffled = full.assign(latency_ms_p50=full["latency_ms_p50"].to_numpy()[::-1])
    first, second = claims.latency_ratio(lora, full, "latency_ms_p50"), claims.latency_ratio(lora, shuffled,
                                                                                             "latency_ms_p50")
    assert (first.value, first.low, first.high) == pytest.approx((second.value, second.low, second.high))
    assert first.count_word == "trials per side" and first.agree == ""


def test_latency_findings_come_from_the_sweep_timed_alone_where_one_is_given():
    """The study times latency beside another trial: on its own trials no latency verdict; with a latency sweep's
    trials (timed alone) the verdict is drawn from those, and the quality findings stay the study's."""
    study = _sweep(0.0, 0.2, 10, 10).assign(timed_alone=False)
    alone = _sweep(0.0, 0.0, 10, 10)
    own = " ".join(claims.check(study))
    assert "5%: **not timed alone**" in own
    found = claims.findings(study, alone, "latency")
    text = " ".join(f.line for f in found)
    assert "5%: **reproduced**" in text and "Timed in latency." in text  # merged LoRA 1.005x full's
    assert "prompt-tuning 1.25 [" in text and f"{PROMPT_WORSE}: **reproduced**" in text  # quality from the study


def test_the_findings_table_has_a_row_per_claim_and_a_column_per_setting():
    sweep = pd.concat([_sweep(0.005, 0.2, 10, 10), _sweep(0.005, 0.2, 10, 10).assign(task="u")])
    table = claims.table(claims.findings(sweep))
    assert table.columns == [claims.FIRST_COLUMN, "m × t (accuracy)", "m × u (accuracy)"]
    rows = {row[0].value: row[1:] for row in table.rows}
    assert set(rows) == {claims.ROW_NOT_WORSE, claims.ROW_PROMPT_WORSE, claims.ROW_LEARNS_LESS,
                         claims.ROW_FORGETS_LESS, claims.ROW_MERGED, *map(claims.row_slower,
                                                                         ("adapter-houlsby", "prompt-tuning"))}
    cell = rows[claims.ROW_NOT_WORSE][0]
    assert cell.best and cell.value.startswith("reproduced: −0.005 [") and cell.value.endswith("3 of 3 seeds agree")
    assert not rows[claims.ROW_LEARNS_LESS][0].best  # not separable: not bold
    assert rows[claims.row_slower("prompt-tuning")][1].value.startswith("reproduced: 1.25× [")
