"""Published PEFT findings checked against a sweep: each one reproduced, not reproduced or not separable, with the
interval behind the verdict and how many seeds agree in sign.

    peft-bench-report results/tradeoffs          (the report's "Published findings" section)

Per model × task, on the seeds both sides share, each claim worded as what is tested:
- LoRA is not worse than full fine-tuning by more than MARGIN, with under 1% of the parameters trainable (Hu et al.,
  2021): non-inferiority of the paired difference LoRA − full in quality (its lower bound above −MARGIN), and the
  trainable fraction below 1% on every seed. Reproduced when both halves hold; not reproduced when the interval lies
  below −MARGIN or the fraction is 1% or more; else not separable.
- Merged LoRA is not slower than full fine-tuning by more than LATENCY_MARGIN (Hu et al., 2021): the ratio of
  geometric-mean latencies, unpaired (latency has nothing to do with the training seed), from trials timed alone.
- Adapters and soft prompts are slower than full fine-tuning (Houlsby et al., 2019; Lester et al., 2021): each such
  method's latency ratio above 1, the same way.
- Prompt tuning is worse than full fine-tuning at this scale (Lester et al., 2021): prompt tuning − full in quality
  below 0; not reproduced when shown not worse by more than MARGIN.
- LoRA learns less and forgets less than full fine-tuning (Biderman et al., 2024): LoRA − full in quality below 0,
  and in forgetting below 0, paired over the same probe items and seeds: a decoder's perplexity rise compared as
  log(after / before), an encoder's recall@1 loss (bounded by 1) as it is.

Every interval puts its seed part on k − 1 degrees of freedom (stats.Estimate); with fewer than MIN_SEEDS seeds no
verdict is stronger than not separable. Latency from trials not timed alone (something else ran beside them, or the
record does not say) gives the verdict "not timed alone".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.report.render import Cell, Table
from bench.report.uncertainty import unstable_seeds
from bench.common import stats
from bench.results.metrics import is_na

MARGIN = 0.02  # quality points: "not worse by more than" 2 points (accuracy or ROUGE-L)
LATENCY_MARGIN = 0.05  # "no added latency": at most 5% slower
TRAINABLE_LIMIT = 0.01  # "under 1% of the parameters"
MIN_SEEDS = 3  # fewer seeds cannot show training noise
SOFT_OR_ADAPTER = ("adapter-houlsby", "adapter-parallel", "adapter-pfeiffer", "prefix-tuning", "prompt-tuning",
                   "p-tuning")
PROBE_HIGHER_IS_BETTER = {"retrieval_recall@1": True, "perplexity": False}
REPRODUCED, NOT_REPRODUCED, NOT_SEPARABLE = "reproduced", "not reproduced", "not separable"
NOT_TIMED_ALONE = "not timed alone"
DECISIVE = (REPRODUCED, NOT_REPRODUCED)  # printed bold in the findings table

# The findings table's rows: each claim, short, as tested
ROW_NOT_WORSE = f"LoRA is not worse than full by more than {MARGIN}, with < 1% trainable"
ROW_PROMPT_WORSE = "prompt tuning is worse than full at this scale"
ROW_LEARNS_LESS = "LoRA learns less (quality below full's)"
ROW_FORGETS_LESS = "LoRA forgets less (forgetting below full's)"
ROW_MERGED = f"merged LoRA is not slower than full by more than {LATENCY_MARGIN:.0%}"
FIRST_COLUMN = "published finding, as tested"


def row_slower(method: str) -> str:
    return f"{method} is slower than full (latency ratio above 1)"


@dataclass
class Interval:
    value: float
    low: float
    high: float
    n_items: int | None
    n_seeds: int
    agree: str = ""  # "3 of 3 seeds agree in sign"; "" where seeds are not paired (latency)
    count_word: str = "seed(s)"  # what n_seeds counts: seeds, or trials per side (latency)

    @classmethod
    def of(cls, estimate: stats.Estimate, n_items: int | None = None) -> Interval:
        low, high = estimate.interval()
        return cls(estimate.value, low, high, n_items if n_items is not None else estimate.n_items,
                   estimate.n_seeds, estimate.agreement())

    def text(self, digits: int = 3, signed: bool = True) -> str:
        form = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
        items = f"{self.n_items} items × " if self.n_items else ""
        agree = f"; {self.agree}" if self.agree else ""
        if not np.isfinite(self.low):  # no spread to build an interval from
            return f"{form.format(self.value)} ({items}{self.n_seeds} {self.count_word}: no interval{agree})"
        return (f"{form.format(self.value)} [{form.format(self.low)}, {form.format(self.high)}] "
                f"({items}{self.n_seeds} {self.count_word}{agree})")

    def short(self, ratio: bool = False) -> str:
        """The findings table's form: "+0.012 [−0.003, +0.027], 3 of 3 seeds agree" or "1.11× [0.57, 2.16], 3 trials
        per side"."""
        form = "{:.2f}" if ratio else "{:+.3f}"
        value = form.format(self.value) + ("×" if ratio else "")
        span = (f" [{form.format(self.low)}, {form.format(self.high)}]" if np.isfinite(self.low) else
                " (no interval)")
        count = self.agree.replace(" in sign", "") or f"{self.n_seeds} {self.count_word}"
        return f"{value}{span}, {count}".replace("-", "−")


@dataclass
class Finding:
    """One claim checked on one model × task: the report's sentence and its cells of the findings table."""
    column: str  # the findings table's column: "minilm-l6 × bbc-topic (accuracy)"
    line: str  # the report's sentence, "minilm-l6 / bbc-topic: LoRA is ..."
    cells: dict[str, Cell] = field(default_factory=dict)  # {table row: verdict and interval}


def _cell(verdict: str, interval: Interval | None, ratio: bool = False, scale: str = "") -> Cell:
    text = verdict if interval is None else f"{verdict}: {interval.short(ratio)}"
    return Cell(text + (f" ({scale})" if scale else ""), best=verdict in DECISIVE)


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
    return Interval.of(stats.difference([a.at[s, "quality_items"] for s in seeds],
                                        [b.at[s, "quality_items"] for s in seeds]))


def probe_contributions(side: dict, higher_is_better: bool) -> np.ndarray | None:
    """Per-item terms whose mean is the trial's forgetting on the compared scale: perplexity (items: mean NLL per
    window, weighted by tokens) -> log(after / before) = weighted mean of (after − before); recall@1 (items: hits)
    -> relative loss (before − after) / mean(before)."""
    before, after = (np.asarray(side.get(key) or [], dtype=float) for key in ("before", "after"))
    if not len(before) or len(before) != len(after):
        return None
    if higher_is_better:
        scale = before.mean()
        return (before - after) / scale if scale else None
    weights = np.asarray(side.get("weights") or np.ones(len(before)), dtype=float)
    return weights * (after - before) / weights.mean()


def forgetting_difference(a: pd.DataFrame, b: pd.DataFrame) -> Interval | None:
    """a − b in forgetting, paired over the same probe items and seeds, on log(after / before) for perplexity;
    None without probe items."""
    seeds = _shared_seeds(a, b, "probe_items")
    if not seeds:
        return None
    probe = a.at[seeds[0], "forgetting_probe"]
    if probe not in PROBE_HIGHER_IS_BETTER:
        return None
    terms = [(probe_contributions(a.at[s, "probe_items"], PROBE_HIGHER_IS_BETTER[probe]),
              probe_contributions(b.at[s, "probe_items"], PROBE_HIGHER_IS_BETTER[probe])) for s in seeds]
    if any(x is None or y is None or len(x) != len(y) for x, y in terms) or len({len(x) for x, _ in terms}) != 1:
        return None
    return Interval.of(stats.estimate([x - y for x, y in terms]))


def _timed_alone(rows: pd.DataFrame) -> bool:
    return "timed_alone" in rows and len(rows) > 0 and rows["timed_alone"].map(lambda v: v is True).all()


def latency_ratio(a: pd.DataFrame, b: pd.DataFrame, a_column: str, b_column: str = "latency_ms_p50") -> Interval | None:
    """a's latency over b's: the ratio of geometric means over each side's trials, unpaired (the training seed does
    not pair latencies), with a 95% interval on the log scale whose spread has the fewer trials' degrees of
    freedom."""
    a_ms, b_ms = a[a_column].dropna().astype(float), b[b_column].dropna().astype(float)
    if a_ms.empty or b_ms.empty:
        return None
    logs = [stats.Estimate(float(np.log(v).mean()), 0.0, float(np.log(v).var(ddof=1) / len(v)) if len(v) > 1 else
                           float("nan"), 0, tuple(np.log(v))) for v in (a_ms, b_ms)]
    ratio = stats.unpaired(*logs)
    low, high = ratio.interval()
    if not np.isfinite(ratio.seed_var) or ratio.n_seeds < 2:
        low = high = float("nan")
    return Interval(float(np.exp(ratio.value)), float(np.exp(low)), float(np.exp(high)), None,
                    min(len(a_ms), len(b_ms)), count_word="trials per side")


def _verdict(interval: Interval | None, reproduced, not_reproduced) -> str:
    if interval is None or not np.isfinite(interval.low) or interval.n_seeds < MIN_SEEDS:
        return NOT_SEPARABLE
    if reproduced(interval):
        return REPRODUCED
    return NOT_REPRODUCED if not_reproduced(interval) else NOT_SEPARABLE


def _lora_not_worse(lora, full, quality_metric: str) -> tuple[str, dict] | None:
    diff = quality_difference(lora, full)
    if diff is None:
        return None
    quality = _verdict(diff, lambda i: i.low > -MARGIN, lambda i: i.high < -MARGIN)
    fraction = lora["trainable_fraction"].dropna()
    small = bool(len(fraction)) and bool((fraction < TRAINABLE_LIMIT).all())
    verdict = (NOT_REPRODUCED if quality == NOT_REPRODUCED or (len(fraction) and not small) else
               REPRODUCED if quality == REPRODUCED and small else NOT_SEPARABLE)
    share = (f"LoRA trains {fraction.max():.2%} of the parameters ({'under' if small else 'not under'} 1% on "
             f"every seed)" if len(fraction) else "trainable fraction n/a")
    line = (f"LoRA is not worse than full fine-tuning by more than {MARGIN} {quality_metric}, with under 1% of the "
            f"parameters trainable: **{verdict}**. LoRA − full {quality_metric} {diff.text()} (lower bound above "
            f"−{MARGIN}: {quality}); {share}.")
    return line, {ROW_NOT_WORSE: _cell(verdict, diff)}


def _latency_check(ratio: Interval | None, rows: list[pd.DataFrame], reproduced, not_reproduced) -> str:
    if ratio is None:
        return NOT_SEPARABLE
    if not all(_timed_alone(r) for r in rows):
        return NOT_TIMED_ALONE
    return _verdict(ratio, reproduced, not_reproduced)


def _merged_lora_latency(lora, full) -> tuple[str, dict] | None:
    ratio = latency_ratio(lora, full, "latency_ms_p50_merged")
    if ratio is None:
        return None
    verdict = _latency_check(ratio, [lora, full], lambda i: i.high <= 1 + LATENCY_MARGIN,
                             lambda i: i.low > 1 + LATENCY_MARGIN)
    unmerged = latency_ratio(lora, full, "latency_ms_p50")
    also = f"; unmerged {unmerged.text(2, signed=False)}" if unmerged else ""
    line = (f"Merged LoRA is not slower than full fine-tuning by more than {LATENCY_MARGIN:.0%}: **{verdict}**. "
            f"Latency over full fine-tuning's (geometric means, unpaired), merged {ratio.text(2, signed=False)}"
            f"{also}.")
    return line, {ROW_MERGED: _cell(verdict, ratio, ratio=True)}


def _added_latency(trials, full) -> tuple[str, dict] | None:
    parts, cells = [], {}
    for method in SOFT_OR_ADAPTER:
        rows = _rows(trials, method)
        ratio = latency_ratio(rows, full, "latency_ms_p50")
        if ratio is None:
            continue
        verdict = _latency_check(ratio, [rows, full], lambda i: i.low > 1, lambda i: i.high < 1)
        parts.append(f"{method} {ratio.text(2, signed=False)}: **{verdict}**")
        cells[row_slower(method)] = _cell(verdict, ratio, ratio=True)
    if not parts:
        return None
    return ("Adapters and soft prompts are slower than full fine-tuning (latency ratio above 1), per method: "
            + "; ".join(parts) + "."), cells


def _prompt_tuning_worse(prompt, full, quality_metric: str) -> tuple[str, dict] | None:
    diff = quality_difference(prompt, full)
    if diff is None:
        return None
    verdict = _verdict(diff, lambda i: i.high < 0, lambda i: i.low > -MARGIN)
    return (f"Prompt tuning is worse than full fine-tuning at this scale (difference below 0): **{verdict}**. "
            f"Prompt tuning − full {quality_metric} {diff.text()}."), {ROW_PROMPT_WORSE: _cell(verdict, diff)}


def _learns_less_forgets_less(lora, full, quality_metric: str) -> tuple[str, dict] | None:
    learn, forget = quality_difference(lora, full), forgetting_difference(lora, full)
    if learn is None and forget is None:
        return None
    learns = _verdict(learn, lambda i: i.high < 0, lambda i: i.low > 0)
    forgets = _verdict(forget, lambda i: i.high < 0, lambda i: i.low > 0)
    probe = lora["forgetting_probe"].dropna()
    scale = ("log(perplexity after / before)" if len(probe) and probe.iloc[0] == "perplexity" else
             "recall@1 loss" if len(probe) else "forgetting")
    learn_text = f"LoRA − full {quality_metric} {learn.text()}" if learn else "no quality items"
    forget_text = f"LoRA − full {scale} {forget.text()}" if forget else "no probe items"
    line = (f"LoRA learns less (quality difference below 0: **{learns}**) and forgets less (forgetting difference "
            f"below 0: **{forgets}**) than full fine-tuning. {learn_text}; {forget_text}.")
    return line, {ROW_LEARNS_LESS: _cell(learns, learn),
                  ROW_FORGETS_LESS: _cell(forgets, forget, scale=scale if forget else "")}


def _unstable(rows: pd.DataFrame) -> dict[str, str]:
    """{method: why} for the default variants whose seeds disagree (uncertainty.unstable_seeds)."""
    ok = rows[rows["status"].eq("ok") & rows["label"].eq(rows["method"])]
    if "quality" not in ok or ok["quality"].isna().all():
        return {}
    score = ok["baseline_score"].dropna() if "baseline_score" in ok else pd.Series(dtype=float)
    kind = ok["baseline_kind"].dropna() if "baseline_kind" in ok else pd.Series(dtype=object)
    return unstable_seeds(ok, float(score.iloc[0]) if len(score) else float("nan"),
                          str(kind.iloc[0]) if len(kind) else "")


def _named(text: str, unstable: dict[str, str]) -> list[str]:
    """The unstable methods a sentence or a table row names."""
    return [method for method in unstable
            if method in text or (method == "lora" and "LoRA" in text) or (method == "full" and "full" in text)
            or (method == "prompt-tuning" and "rompt tuning" in text)]


def _caveat(line: str, unstable: dict[str, str]) -> str:
    """The line with a caveat for each unstable method it names: its mean hides a failed or outlying seed."""
    named = [f"{method} is unstable ({unstable[method]})" for method in _named(line, unstable)]
    return line + (" Caveat: " + "; ".join(named) + ", so this verdict rests on a mean over a failed or outlying "
                   "seed." if named else "")


def _with_caveats(cells: dict[str, Cell], unstable: dict[str, str]) -> dict[str, Cell]:
    for row, cell in cells.items():
        if named := _named(row, unstable):
            cell.value += f"; unstable: {', '.join(named)}"
    return cells


def _latency_rows(rows: pd.DataFrame, latency: pd.DataFrame | None, model: str, task: str) -> pd.DataFrame:
    """The trials latency findings are drawn from: the latency sweep's for this model × task where one is given."""
    if latency is None:
        return rows
    return latency[(latency["model"] == model) & (latency["task"] == task)]


def _setting_findings(rows: pd.DataFrame, timed: pd.DataFrame, timed_in: str) -> list[tuple[str, dict]]:
    """(sentence, cells) per claim that this model × task has the methods for; latency from `timed`."""
    full, timed_full = _rows(rows, "full"), _rows(timed, "full")
    if full.empty:
        return []
    metric = str(rows["quality_metric"].dropna().iloc[0]) if rows["quality_metric"].notna().any() else "quality"
    lora, prompt, timed_lora = _rows(rows, "lora"), _rows(rows, "prompt-tuning"), _rows(timed, "lora")
    latency = [_merged_lora_latency(timed_lora, timed_full) if not (timed_lora.empty or timed_full.empty) else None,
               _added_latency(timed, timed_full) if not timed_full.empty else None]
    latency = [(line + timed_in, cells) for line, cells in filter(None, latency)]
    return [found for found in [_lora_not_worse(lora, full, metric) if not lora.empty else None,
                                _prompt_tuning_worse(prompt, full, metric) if not prompt.empty else None,
                                _learns_less_forgets_less(lora, full, metric) if not lora.empty else None,
                                *latency] if found]


def findings(trials: pd.DataFrame, latency: pd.DataFrame | None = None, latency_name: str = "") -> list[Finding]:
    """Every claim per model × task that has the methods it needs. Latency claims come from `latency` (a sweep
    timed one trial at a time, named `latency_name`) where given, else from `trials`. A finding that names an
    unstable method says so."""
    timed_in = f" Timed in {latency_name}." if latency is not None and latency_name else ""
    found = []
    for (model, task), rows in trials.groupby(["model", "task"], sort=False):
        unstable = _unstable(rows)
        metric = str(rows["quality_metric"].dropna().iloc[0]) if rows["quality_metric"].notna().any() else "quality"
        column = f"{model} × {task} ({metric})"
        for line, cells in _setting_findings(rows, _latency_rows(rows, latency, model, task), timed_in):
            found.append(Finding(column, f"{model} / {task}: {_caveat(line, unstable)}",
                                 _with_caveats(cells, unstable)))
    return found


def check(trials: pd.DataFrame) -> list[str]:
    """The report's sentences, one per finding and model × task."""
    return [finding.line for finding in findings(trials)]


def table(found: list[Finding]) -> Table:
    """Claims as rows, model × task as columns; each cell the verdict, the interval behind it and the seeds that
    agree (bold where the interval decides). README's findings table is this table."""
    columns = list(dict.fromkeys(f.column for f in found))
    cells: dict[str, dict[str, Cell]] = {}
    for finding in found:
        for row, cell in finding.cells.items():
            cells.setdefault(row, {})[finding.column] = cell
    rows = [[Cell(row), *(by_column.get(c, Cell("n/a")) for c in columns)] for row, by_column in cells.items()]
    frame = pd.DataFrame([[r[0].value, *(c.value for c in r[1:])] for r in rows], columns=[FIRST_COLUMN, *columns])
    return Table("findings", "Published findings, as tested: verdict, 95% interval, seeds agreeing in sign",
                 [FIRST_COLUMN, *columns], rows, frame)


def count_verdicts(lines: list[str]) -> int:
    """Verdicts drawn from an interval (printed in bold; "not timed alone" draws none)."""
    return sum(line.count(f"**{word}**") for line in lines for word in (REPRODUCED, NOT_REPRODUCED, NOT_SEPARABLE))


EXPLAINED = (f"Each finding is checked per model × task against full fine-tuning on the seeds both share, worded as "
             f"what is tested. Quality and forgetting differences are paired over the same items and seeds; "
             f"latency ratios are unpaired geometric means, and only trials timed alone give a latency verdict. "
             f"Every interval is 95% with its seed part on k − 1 degrees of freedom, and says how many seeds agree "
             f"in sign. Not separable: the interval does not decide (it straddles 0, or the {MARGIN}-point or "
             f"{LATENCY_MARGIN:.0%} margin), or fewer than {MIN_SEEDS} seeds stand behind it.")
