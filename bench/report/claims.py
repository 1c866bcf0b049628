"""Published PEFT findings checked against a sweep: each one reproduced, not reproduced or not separable, with the
interval behind the verdict.

    peft-bench-report results/tradeoffs          (the report's "Published findings" section)

Per model × task, on the seeds both sides share:
- LoRA near full fine-tuning with under 1% of the parameters trainable (Hu et al., 2021): the paired difference
  LoRA − full in quality over the same items and seeds. Reproduced when its interval lies above −MARGIN (LoRA at
  most MARGIN worse), not reproduced when it lies below −MARGIN, else not separable.
- Merged LoRA adds no inference latency (Hu et al., 2021): merged LoRA's latency over full fine-tuning's, per seed.
  Reproduced when the interval of the ratio lies below 1 + LATENCY_MARGIN, not reproduced when above it.
- Adapters and soft prompts add latency (Houlsby et al., 2019; Lester et al., 2021): each such method's latency
  over full fine-tuning's. Reproduced when the ratio's interval lies above 1, not reproduced when below 1.
- Prompt tuning lags full fine-tuning at small scale (Lester et al., 2021): prompt tuning − full in quality.
  Reproduced when the interval lies below 0, not reproduced when above −MARGIN.
- LoRA learns less and forgets less (Biderman et al., 2024): LoRA − full in quality (learns less: below 0) and in
  forgetting (forgets less: below 0), the forgetting difference bootstrapped over the same probe items.

Quality and forgetting intervals are paired percentile bootstraps over items and seeds (bench.results.stats,
bench.probes.forgetting); latency ratios get a t interval over seeds of the log ratio (latency has no items).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from bench.probes import forgetting
from bench.results import stats
from bench.results.metrics import is_na

MARGIN = 0.02  # quality points: "near" and "no worse" mean within 2 points (accuracy or ROUGE-L)
LATENCY_MARGIN = 0.05  # "no added latency": at most 5% slower
SOFT_OR_ADAPTER = ("adapter-houlsby", "adapter-parallel", "adapter-pfeiffer", "prefix-tuning", "prompt-tuning",
                   "p-tuning")
PROBE_HIGHER_IS_BETTER = {"retrieval_recall@1": True, "perplexity": False}
REPRODUCED, NOT_REPRODUCED, NOT_SEPARABLE = "reproduced", "not reproduced", "not separable"


@dataclass
class Interval:
    value: float
    low: float
    high: float
    n_items: int | None
    n_seeds: int

    def text(self, digits: int = 3, signed: bool = True) -> str:
        form = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
        items = f"{self.n_items} items × " if self.n_items else ""
        if not np.isfinite(self.low):  # a ratio over one seed: no spread to build an interval from
            return f"{form.format(self.value)} ({items}{self.n_seeds} seed: no interval)"
        return (f"{form.format(self.value)} [{form.format(self.low)}, {form.format(self.high)}] "
                f"({items}{self.n_seeds} seed(s))")


def _rows(trials: pd.DataFrame, method: str) -> pd.DataFrame:
    """The method's ok trials in its default variant (label = method name), one per seed."""
    rows = trials[(trials["method"] == method) & (trials["label"] == method) & (trials["status"] == "ok")]
    return rows.drop_duplicates("seed", keep="last").set_index("seed")


def _shared_seeds(a: pd.DataFrame, b: pd.DataFrame, column: str) -> list:
    """The seeds where both sides have a value in `column`."""
    if column not in a or column not in b:
        return []
    return sorted({s for s, v in a[column].items() if not is_na(v)} & {s for s, v in b[column].items() if not is_na(v)})


def quality_difference(a: pd.DataFrame, b: pd.DataFrame) -> Interval | None:
    """a − b in quality, paired over the same items and seeds; None without per-item scores on shared seeds."""
    seeds = _shared_seeds(a, b, "quality_items")
    if not seeds or any(len(a.at[s, "quality_items"]) != len(b.at[s, "quality_items"]) for s in seeds):
        return None
    result = stats.paired_bootstrap([a.at[s, "quality_items"] for s in seeds],
                                    [b.at[s, "quality_items"] for s in seeds])
    return Interval(result.difference, result.low, result.high, result.n_items, result.n_seeds)


def forgetting_difference(a: pd.DataFrame, b: pd.DataFrame) -> Interval | None:
    """a − b in forgetting, paired over the same probe items and seeds; None without probe items."""
    seeds = _shared_seeds(a, b, "probe_items")
    if not seeds:
        return None
    probe = a.at[seeds[0], "forgetting_probe"]
    if probe not in PROBE_HIGHER_IS_BETTER:
        return None
    runs = [(a.at[s, "probe_items"], b.at[s, "probe_items"]) for s in seeds]
    result = forgetting.difference_interval(runs, PROBE_HIGHER_IS_BETTER[probe])
    if result is None:
        return None
    value, low, high = result
    return Interval(value, low, high, len(runs[0][0]["after"]), len(seeds))


def latency_ratio(a: pd.DataFrame, b: pd.DataFrame, a_column: str, b_column: str = "latency_ms_p50") -> Interval | None:
    """a's latency over b's: geometric mean over shared seeds with a 95% t interval of the log ratio."""
    seeds = [s for s in a.index.intersection(b.index) if pd.notna(a.at[s, a_column]) and pd.notna(b.at[s, b_column])]
    if not seeds:
        return None
    logs = np.log([a.at[s, a_column] / b.at[s, b_column] for s in seeds])
    centre = float(logs.mean())
    if len(logs) < 2:
        return Interval(float(np.exp(centre)), np.nan, np.nan, None, 1)
    half = sps.t.ppf(0.5 + stats.CONFIDENCE / 2, len(logs) - 1) * logs.std(ddof=1) / np.sqrt(len(logs))
    return Interval(float(np.exp(centre)), float(np.exp(centre - half)), float(np.exp(centre + half)), None, len(logs))


def _verdict(interval: Interval | None, reproduced, not_reproduced) -> str:
    if interval is None or not np.isfinite(interval.low):
        return NOT_SEPARABLE
    if reproduced(interval):
        return REPRODUCED
    return NOT_REPRODUCED if not_reproduced(interval) else NOT_SEPARABLE


def _lora_near_full(lora, full, quality_metric: str) -> str | None:
    diff = quality_difference(lora, full)
    if diff is None:
        return None
    verdict = _verdict(diff, lambda i: i.low > -MARGIN, lambda i: i.high < -MARGIN)
    fraction = lora["trainable_fraction"].dropna()
    share = f"; LoRA trains {fraction.iloc[0]:.2%} of the parameters" if len(fraction) else ""
    return (f"LoRA near full fine-tuning (within {MARGIN} {quality_metric}) at under 1% of the parameters: "
            f"**{verdict}**. LoRA − full {quality_metric} {diff.text()}{share}.")


def _merged_lora_latency(lora, full) -> str | None:
    ratio = latency_ratio(lora, full, "latency_ms_p50_merged")
    if ratio is None:
        return None
    verdict = _verdict(ratio, lambda i: i.high <= 1 + LATENCY_MARGIN, lambda i: i.low > 1 + LATENCY_MARGIN)
    unmerged = latency_ratio(lora, full, "latency_ms_p50")
    also = f"; unmerged {unmerged.text(2, signed=False)}" if unmerged else ""
    return (f"Merged LoRA adds no latency (at most {LATENCY_MARGIN:.0%} over full fine-tuning): **{verdict}**. "
            f"Latency over full fine-tuning's, merged {ratio.text(2, signed=False)}{also}.")


def _added_latency(trials, full) -> str | None:
    parts, verdicts = [], []
    for method in SOFT_OR_ADAPTER:
        ratio = latency_ratio(_rows(trials, method), full, "latency_ms_p50")
        if ratio is None:
            continue
        verdicts.append(_verdict(ratio, lambda i: i.low > 1, lambda i: i.high < 1))
        parts.append(f"{method} {ratio.text(2, signed=False)}: {verdicts[-1]}")
    if not parts:
        return None
    overall = verdicts[0] if len(set(verdicts)) == 1 else "mixed"
    return (f"Adapters and soft prompts add latency: **{overall}**. Latency over full fine-tuning's: "
            + "; ".join(parts) + ".")


def _prompt_tuning_lags(prompt, full, quality_metric: str) -> str | None:
    diff = quality_difference(prompt, full)
    if diff is None:
        return None
    verdict = _verdict(diff, lambda i: i.high < 0, lambda i: i.low > -MARGIN)
    return (f"Prompt tuning lags full fine-tuning at this scale: **{verdict}**. Prompt tuning − full "
            f"{quality_metric} {diff.text()}.")


def _learns_less_forgets_less(lora, full, quality_metric: str) -> str | None:
    learn, forget = quality_difference(lora, full), forgetting_difference(lora, full)
    if learn is None and forget is None:
        return None
    learns = _verdict(learn, lambda i: i.high < 0, lambda i: i.low > 0)
    forgets = _verdict(forget, lambda i: i.high < 0, lambda i: i.low > 0)
    learn_text = f"LoRA − full {quality_metric} {learn.text()}" if learn else "no quality items"
    forget_text = f"LoRA − full forgetting {forget.text()}" if forget else "no probe items"
    return (f"LoRA learns less (**{learns}**) and forgets less (**{forgets}**) than full fine-tuning. "
            f"{learn_text}; {forget_text}.")


def check(trials: pd.DataFrame) -> list[str]:
    """One line per finding and model × task that has the methods it needs."""
    lines = []
    for (model, task), rows in trials.groupby(["model", "task"], sort=False):
        full = _rows(rows, "full")
        if full.empty:
            continue
        metric = str(rows["quality_metric"].dropna().iloc[0]) if rows["quality_metric"].notna().any() else "quality"
        lora, prompt = _rows(rows, "lora"), _rows(rows, "prompt-tuning")
        found = [_lora_near_full(lora, full, metric) if not lora.empty else None,
                 _merged_lora_latency(lora, full) if not lora.empty else None,
                 _added_latency(rows, full),
                 _prompt_tuning_lags(prompt, full, metric) if not prompt.empty else None,
                 _learns_less_forgets_less(lora, full, metric) if not lora.empty else None]
        lines += [f"{model} / {task}: {line}" for line in found if line]
    return lines


EXPLAINED = (f"Each finding is checked per model × task against full fine-tuning on the seeds both share: quality "
             f"and forgetting differences are paired bootstraps over the same items and seeds (95%), latency ratios "
             f"a t interval over seeds. Not separable: the interval does not decide (it straddles 0, or the "
             f"{MARGIN}-point or {LATENCY_MARGIN:.0%} margin).")
