"""The learning rate each method should use, chosen on the validation split of a learning-rate search.

    python -m bench.results.choose_lr results/lr-search          (after: peft-bench sweep=lr-search; exit 3 when a
                                                               choice still needs confirming on more seeds)

Per model, task, method and the method's params (a search at another start or rank is another choice), among
the rates run on the most seeds (a confirmation run gives the best candidates more seeds: `seed=1,2` with their
rates; a rate on one seed is not compared with a mean of three): the rates the
validation items cannot separate from the best mean validation quality (`val_quality`, the last checkpoint of
`train.eval_every`; multiple comparisons with the best, paired on the same validation items), and of these the
lowest: a higher rate that validation cannot tell apart buys nothing and sits nearer to divergence. A rate directly
below one that failed (a failed trial, or validation under half the chosen rate's) is the edge of stability, where
another seed can collapse (adapter-houlsby's 1e-2, chosen on one seed below a 3e-2 that fell to the majority class,
collapsed on a study seed): it is only chosen once confirmed, on three seeds or more none of which collapsed, and
until then the line says UNCONFIRMED with the command that confirms it. A warning when the chosen rate sits at the
edge of the grid. Test quality is in the same records and is never read here: the test split is scored once per
trial, not chosen on.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import stats
from bench.common.files import read_json
from bench.config import PARAM_KEY_DEFAULTS, params_in_key
from bench.results.record import ITEMS_NAME, RECORD_NAME, read


CONFIRM_SEEDS = 3  # the chosen rate's seed plus two more
COLLAPSE_SHARE = 0.5  # a validation quality under half the chosen rate's: that rate (or seed) failed


@dataclass
class Choice:
    model: str
    task: str
    method: str
    rate: float  # the chosen learning rate: the lowest of the rates validation cannot separate from the best
    val_quality: float  # its mean validation quality over seeds
    n_val: int | None
    seeds: int
    grid: dict[float, float] = field(default_factory=dict)  # every rate tried -> mean validation quality
    tied: list[float] = field(default_factory=list)  # rates not separable from the best mean, lowest first
    at_edge: bool = False  # the chosen rate is the smallest or largest tried: the grid should extend past it
    failed: set = field(default_factory=set)  # rates with a failed trial
    seed_values: list[float] = field(default_factory=list)  # the chosen rate's validation quality per seed
    params: str = "{}"  # the method's params (JSON, as its key counts them) the search ran with
    variant: str = ""  # what sets these params apart from the same method's other searches here ("init=text")

    @property
    def beside_a_failure(self) -> bool:
        """The next rate above the chosen one failed (a failed trial, or validation under half the chosen rate's):
        the chosen rate sits at the edge of stability, where another seed can fail too."""
        above = sorted(rate for rate in set(self.grid) | self.failed if rate > self.rate)
        return bool(above) and (above[0] in self.failed or self.grid[above[0]] < COLLAPSE_SHARE * self.val_quality)

    @property
    def confirmed(self) -> bool:
        """Safe to write: not beside a failure, or run on CONFIRM_SEEDS seeds none of which collapsed."""
        if self.rate in self.failed:
            return False
        if not self.beside_a_failure:
            return True
        best = max(self.seed_values, default=0.0)
        return self.seeds >= CONFIRM_SEEDS and min(self.seed_values) >= COLLAPSE_SHARE * best

    def line(self) -> str:
        grid = ", ".join(f"{rate:.2g}: {quality:.3f}" for rate, quality in sorted(self.grid.items()))
        grid += "".join(f", {rate:.2g}: failed" for rate in sorted(self.failed - set(self.grid)))
        others = [f"{r:.2g}" for r in self.tied if r != self.rate]
        notes = ([f"the lowest of the rates validation cannot separate (also {', '.join(others)})"] if others
                 else []) + (["at the edge of the grid: extend it"] if self.at_edge else []) + (
            [f"directly below a rate that failed: confirmed on {self.seeds} seeds"]
            if self.beside_a_failure and self.confirmed else [])
        method = f"{self.method} [{self.variant}]" if self.variant else self.method
        head = f"{self.model} / {self.task} / {method}: learning_rate {self.rate:.2g}"
        if not self.confirmed:
            head += (f" UNCONFIRMED: directly below a rate that failed, on {self.seeds} seed(s); run it on "
                     f"{CONFIRM_SEEDS - self.seeds} more seed(s) (e.g. 'seed=1,2' with this rate) before using it")
        return (f"{head} (validation {self.val_quality:.3f}, n_val {self.n_val}, {self.seeds} seed(s); grid {grid})"
                + (f"; {'; '.join(notes)}" if notes else ""))


def _rate(record: dict) -> float | None:
    rate = (record.get("config") or {}).get("learning_rate")
    return None if rate is None else float(f"{rate:.6g}")  # 3 x 3e-3 and 9e-3 are one rate


def _params(record: dict) -> str:
    method = (record.get("config") or {}).get("method") or {}
    return json.dumps(params_in_key(method.get("name"), method.get("params") or {}), sort_keys=True)


def _group(record: dict) -> tuple:
    identity = record.get("identity") or {}
    return identity.get("model"), identity.get("task"), identity.get("method"), _params(record)


def _failures(folder: Path) -> dict[tuple, set]:
    """{(model, task, method, params): rates with a failed trial} (a crash, a NaN loss, out of memory)."""
    found: dict[tuple, set] = defaultdict(set)
    for path in sorted(Path(folder).rglob(RECORD_NAME)):
        record = read(path)
        if record and record.get("status") == "failed" and _rate(record) is not None:
            found[_group(record)].add(_rate(record))
    return found


def _trials(folder: Path) -> list[dict]:
    """Finished ok trials with a validation score: identity, learning rate, val_quality, validation items."""
    trials = []
    for path in sorted(Path(folder).rglob(RECORD_NAME)):
        record = read(path)
        if not record or record["status"] != "ok" or record["metrics"].get("val_quality") is None:
            continue
        items = read_json(path.parent / ITEMS_NAME) or {}
        rate = _rate(record)
        trials.append({**record["identity"], "group": _group(record), "rate": rate,
                       "val_quality": record["metrics"]["val_quality"], "n_val": record["metrics"].get("n_val"),
                       "val_items": items.get("val_quality") or []})
    return trials


def _tied_rates(by_rate: dict[float, list[dict]]) -> list[float] | None:
    """Rates validation cannot separate from the best (multiple comparisons with the best, paired on the same
    validation items and seeds); None without items."""

    seeds = {rate: sorted(trials, key=lambda t: t["seed"]) for rate, trials in by_rate.items()}
    shapes = {tuple((t["seed"], len(t["val_items"])) for t in trials) for trials in seeds.values()}
    if len(shapes) != 1 or any(not t["val_items"] for trials in seeds.values() for t in trials):
        return None  # different seeds or item counts per rate: no paired comparison
    result = stats.tie_set({rate: [t["val_items"] for t in trials] for rate, trials in seeds.items()})
    return list(result.tied)


def choose(folder: Path) -> list[Choice]:
    groups: dict[tuple, dict[float, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for trial in _trials(folder):
        groups[trial["group"]][trial["rate"]].append(trial)
    failures = _failures(folder)
    choices = []
    for key, by_rate in sorted(groups.items()):
        grid = {rate: sum(t["val_quality"] for t in trials) / len(trials) for rate, trials in by_rate.items()}
        most_seeds = max(len(trials) for trials in by_rate.values())
        candidates = {rate: trials for rate, trials in by_rate.items() if len(trials) == most_seeds}
        best = max(sorted(candidates), key=lambda rate: grid[rate])  # ties of the mean go to the smallest rate
        tied = sorted(set(_tied_rates(candidates) or []) | {best})
        rate = tied[0]  # the lowest rate validation cannot separate from the best
        choices.append(Choice(*key[:3], rate, grid[rate], by_rate[rate][0]["n_val"], len(by_rate[rate]), grid, tied,
                              len(grid) > 1 and rate in (min(grid), max(grid)), failures.get(key, set()),
                              [t["val_quality"] for t in by_rate[rate]], params=key[3]))
    return _name_variants(choices)


def _name_variants(choices: list[Choice]) -> list[Choice]:
    """Where one method was searched with different params, each choice names the params its searches differ in."""
    by_method = defaultdict(list)
    for choice in choices:
        by_method[(choice.model, choice.task, choice.method)].append(choice)
    for same in by_method.values():
        if len(same) < 2:
            continue
        params = [json.loads(choice.params) for choice in same]
        names = sorted({name for p in params for name in p if len({json.dumps(q.get(name)) for q in params}) > 1})
        for choice, values in zip(same, params):
            values = {**PARAM_KEY_DEFAULTS.get(choice.method, {}), **values}  # a param recorded before it existed
            choice.variant = " ".join(f"{name}={values.get(name, 'default')}" for name in names)
    return choices


def main(argv: list[str] | None = None) -> int:
    folders = (argv if argv is not None else sys.argv[1:]) or ["results/lr-search"]
    choices = [c for folder in folders for c in choose(Path(folder))]
    if not choices:
        print(f"choose_lr: no finished trial with a validation score (train.eval_every) under {', '.join(folders)}",
              file=sys.stderr)
        return 1
    for choice in choices:
        print(choice.line())
    return 0 if all(choice.confirmed for choice in choices) else 3


if __name__ == "__main__":
    sys.exit(main())
