"""The trivial baseline of a generation task, the floor a trained method must be shown above: the lead, the article's
first sentence taken as the headline, scored with the task's primary metric on the same test rows as the trials.

    python -m bench.results.baselines results/tradeoffs     (writes results/tradeoffs/baselines.json)

Classification trials record their own floor (majority_share, in the trial); a generation trial records none, so
this command scores the lead once per generation task of a sweep, from the task config its records hold, and writes
it beside them, where the report reads it. The split is deterministic (bench.tasks.SPLIT_SEED and SPLIT_VERSION), so
the rows are the ones the trials scored while the split version is the one they ran under: the file records it and
is never rewritten under another; the item count is checked against the trials' n_eval.
"""

from __future__ import annotations

import re
import sys
from dataclasses import fields
from pathlib import Path

from bench.config import TaskConfig
from bench.common.files import read_json, write_atomic
from bench.results.record import RECORD_NAME, read
from bench.tasks import SPLIT_VERSION, metrics, raw_splits

FILE_NAME = "baselines.json"
KIND = "lead-sentence"
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def lead_sentence(text: str) -> str:
    """The first sentence of the text's first paragraph (a news article's lead)."""
    first = str(text).strip().split("\n")[0].strip()
    return SENTENCE_END.split(first, maxsplit=1)[0]


def lead_baseline(cfg: TaskConfig, test_rows: list[dict]) -> dict:
    """{"kind", "metric", "score", "n", "items"}: the lead of each test row scored against its reference with the
    primary metric (per item where the metric is a mean over items)."""

    predictions = [lead_sentence(row["text"]) for row in test_rows]
    references = [str(row["label"]) for row in test_rows]
    scored = metrics.scored("generation", [cfg.primary_metric], cfg.primary_metric, predictions, references)
    return {"kind": KIND, "metric": cfg.primary_metric, "score": float(scored[cfg.primary_metric]),
            "n": len(test_rows), "items": scored.get("items") or []}


def _task_configs(folder: Path) -> dict[str, tuple[TaskConfig, set]]:
    """{task name: (its config, the n_eval its ok trials recorded)} for the generation tasks of a sweep."""
    names = {f.name for f in fields(TaskConfig)}
    found: dict[str, tuple[TaskConfig, set]] = {}
    for path in sorted(Path(folder).rglob(RECORD_NAME)):
        record = read(path)
        task = (record or {}).get("config", {}).get("task") or {}
        if not record or record.get("status") != "ok" or task.get("kind") != "generation":
            continue
        cfg = TaskConfig(**{k: v for k, v in task.items() if k in names})
        n_eval = record["metrics"].get("n_eval")
        found.setdefault(cfg.name, (cfg, set()))[1].add(n_eval)
    return found


def write(folder: Path) -> dict:
    """Score the lead of every generation task of the sweep and write baselines.json; returns what it wrote. A
    baselines.json written under another split version is never overwritten: its rows are the ones the sweep's
    trials scored, and today's split would pick others."""

    earlier = read_json(Path(folder) / FILE_NAME) or {}
    versions = {entry.get("split_version", 1) for entry in earlier.values() if isinstance(entry, dict)}
    if versions - {SPLIT_VERSION}:
        raise ValueError(f"{Path(folder) / FILE_NAME} was scored on split version {sorted(versions)}, the code "
                         f"splits with version {SPLIT_VERSION}: its rows are the ones the trials scored; keep it")
    out = {}
    for name, (cfg, n_evals) in _task_configs(folder).items():
        rows = raw_splits(cfg)["test"][: cfg.max_eval_samples]
        result = lead_baseline(cfg, rows)
        if n_evals - {None} and n_evals - {None} != {result["n"]}:
            raise ValueError(f"task {name!r}: the trials scored {sorted(n_evals - {None})} items, the split gives "
                             f"{result['n']}: the split changed since the sweep ran")
        out[name] = {**result, "split_version": SPLIT_VERSION}
    write_atomic(Path(folder) / FILE_NAME, out)
    return out


def main(argv: list[str] | None = None) -> int:
    folders = (argv if argv is not None else sys.argv[1:]) or ["results/tradeoffs"]
    for folder in folders:
        try:
            written = write(Path(folder))
        except ValueError as error:
            print(f"bench.results.baselines: {error}", file=sys.stderr)
            return 2
        for name, result in written.items():
            print(f"{folder}: {name}: {result['kind']} {result['metric']} {result['score']:.3f} "
                  f"({result['n']} items) -> {Path(folder) / FILE_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
