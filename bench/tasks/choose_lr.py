"""The learning rate each method should use, chosen on the validation split of a learning-rate search.

    python -m bench.tasks.choose_lr results/lr-search          (after: peft-bench sweep=lr-search)

Per model, task and method: the rate with the best mean validation quality (`val_quality`, the last checkpoint
of `train.eval_every`) over seeds, among the rates run on the most seeds (a confirmation run gives the best
candidates more seeds: `seed=1,2` with their rates; a rate on one seed is not compared with a mean of three); the
rates the validation items cannot separate from it (a paired bootstrap on the same validation items,
Holm-corrected); and a warning when the best rate sits at the edge of the grid. Test quality is in the same records
and is never read here: the test split is scored once per trial, not chosen on.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench.results.record import ITEMS_NAME, RECORD_NAME, read, read_json


@dataclass
class Choice:
    model: str
    task: str
    method: str
    rate: float  # the chosen learning rate
    val_quality: float  # its mean validation quality over seeds
    n_val: int | None
    seeds: int
    grid: dict[float, float] = field(default_factory=dict)  # every rate tried -> mean validation quality
    tied: list[float] = field(default_factory=list)  # rates not separable from the chosen one (it first)
    at_edge: bool = False  # the best rate is the smallest or largest tried: the grid should extend past it

    @property
    def beside_a_failure(self) -> bool:
        """Chosen on one seed right below a rate that failed (under half the chosen rate's validation quality): such
        a rate sits at the edge of stability, where another seed can fail too (adapter-houlsby's 1e-2, chosen on
        seed 0 below a 3e-2 that fell to the majority class, collapsed on seed 1 of the study)."""
        above = sorted(rate for rate in self.grid if rate > self.rate)
        return self.seeds == 1 and bool(above) and self.grid[above[0]] < 0.5 * self.val_quality

    def line(self) -> str:
        grid = ", ".join(f"{rate:.2g}: {quality:.3f}" for rate, quality in sorted(self.grid.items()))
        others = [f"{r:.2g}" for r in self.tied[1:]]
        notes = ([f"not separable from {', '.join(others)}"] if others else []) + (
            ["at the edge of the grid: extend it"] if self.at_edge else []) + (
            ["one seed, just below a rate that failed: confirm on more seeds ('seed=1,2' with these rates)"]
            if self.beside_a_failure else [])
        return (f"{self.model} / {self.task} / {self.method}: learning_rate {self.rate:.2g} "
                f"(validation {self.val_quality:.3f}, n_val {self.n_val}, {self.seeds} seed(s); grid {grid})"
                + (f"; {'; '.join(notes)}" if notes else ""))


def _trials(folder: Path) -> list[dict]:
    """Finished ok trials with a validation score: identity, learning rate, val_quality, validation items."""
    trials = []
    for path in sorted(Path(folder).rglob(RECORD_NAME)):
        record = read(path)
        if not record or record["status"] != "ok" or record["metrics"].get("val_quality") is None:
            continue
        items = read_json(path.parent / ITEMS_NAME) or {}
        rate = float(f"{record['config']['learning_rate']:.6g}")  # 3 x 3e-3 and 9e-3 are one rate
        trials.append({**record["identity"], "rate": rate,
                       "val_quality": record["metrics"]["val_quality"], "n_val": record["metrics"].get("n_val"),
                       "val_items": items.get("val_quality") or []})
    return trials


def _tied_rates(by_rate: dict[float, list[dict]]) -> list[float] | None:
    """Rates the paired bootstrap on validation items cannot separate from the best; None without items."""
    from bench.results import stats

    seeds = {rate: sorted(trials, key=lambda t: t["seed"]) for rate, trials in by_rate.items()}
    shapes = {tuple((t["seed"], len(t["val_items"])) for t in trials) for trials in seeds.values()}
    if len(shapes) != 1 or any(not t["val_items"] for trials in seeds.values() for t in trials):
        return None  # different seeds or item counts per rate: no paired comparison
    result = stats.tie_set({rate: [t["val_items"] for t in trials] for rate, trials in seeds.items()})
    return list(result.tied)


def choose(folder: Path) -> list[Choice]:
    groups: dict[tuple, dict[float, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for trial in _trials(folder):
        groups[(trial["model"], trial["task"], trial["method"])][trial["rate"]].append(trial)
    choices = []
    for (model, task, method), by_rate in sorted(groups.items()):
        grid = {rate: sum(t["val_quality"] for t in trials) / len(trials) for rate, trials in by_rate.items()}
        most_seeds = max(len(trials) for trials in by_rate.values())
        candidates = {rate: trials for rate, trials in by_rate.items() if len(trials) == most_seeds}
        best = max(sorted(candidates), key=lambda rate: grid[rate])  # ties of the mean go to the smallest rate
        tied = _tied_rates(candidates) or [best]
        if tied[0] != best:  # tie_set breaks equal means by name; keep the chosen rate first
            tied = [best] + [r for r in tied if r != best]
        choices.append(Choice(model, task, method, best, grid[best], by_rate[best][0]["n_val"], len(by_rate[best]),
                              grid, tied, len(grid) > 1 and best in (min(grid), max(grid))))
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
