"""Flatten every trial record under a folder into one table: trials.csv and trials.parquet.

Safe on a sweep still running or killed: partial or unreadable files are skipped, never half-read.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.common.files import replace_atomic
from bench.results.record import RECORD_NAME, read

IDENTITY = ["method", "family", "model", "task", "seed", "status"]


def flatten(record: dict, path: Path) -> dict:
    error = record.get("error") or {}
    config = record.get("config", {})
    return {
        **{k: record["identity"].get(k) for k in IDENTITY if k != "status"},
        "status": record["status"],
        **record.get("metrics", {}),
        "error_type": error.get("type"),
        "error_phase": error.get("phase"),
        "error_message": error.get("message"),
        "method_params": json.dumps(config.get("method", {}).get("params", {}), sort_keys=True),
        "learning_rate": config.get("learning_rate"),
        "learning_rate_chosen_for_model": config.get("learning_rate_chosen_for_model"),
        "max_steps": config.get("train", {}).get("max_steps"),
        "key": record.get("key"),
        "trial_dir": str(path.parent),
        "finished_at": record.get("finished_at"),
    }


def load_table(folder: Path):
    import pandas as pd

    rows = []
    for path in sorted(Path(folder).rglob(RECORD_NAME)):
        record = read(path)
        if record is not None:
            rows.append(flatten(record, path))
    return pd.DataFrame(rows)


def write(table, folder: Path) -> Path:
    """trials.csv and trials.parquet in the folder, each replaced atomically; returns the csv path."""
    folder = Path(folder)
    replace_atomic(folder / "trials.csv", lambda temp: table.to_csv(temp, index=False))
    replace_atomic(folder / "trials.parquet", lambda temp: table.to_parquet(temp, index=False))
    return folder / "trials.csv"


def consolidate(folder: Path) -> Path | None:
    """Write trials.csv and trials.parquet in the folder; None when it holds no record yet.

    Works on a sweep still running or killed (python -m bench.results.consolidate results/quick).
    """
    table = load_table(folder)
    if table.empty:
        return None
    return write(table, folder)


if __name__ == "__main__":
    import sys

    for arg in sys.argv[1:] or ["results"]:
        print(consolidate(Path(arg)) or f"{arg}: no trial record")
