"""Resume: which folder a trial writes to, and whether a finished record there already answers it.

A record is matched by the trial's config key (a hash of everything the trial computes), not by its folder name:
two configs that map to one folder name (a preset edited between runs, a long override list cut short) never
overwrite each other's finished record; the second one goes to `<name>@<key>`.
"""

from __future__ import annotations

from pathlib import Path

from bench.results.record import FINISHED, RECORD_NAME, read


def place(trial_dir: Path, key: str, force: bool = False) -> tuple[Path, dict | None]:
    """(folder to run the trial in, its finished record or None when the trial must run)."""
    keyed = trial_dir.with_name(f"{trial_dir.name}@{key[:8]}")
    for folder in (trial_dir, keyed):
        record = read(folder / RECORD_NAME)
        if record is not None and record.get("key") == key:
            finished = record.get("status") in FINISHED and not force
            return folder, (record if finished else None)
    record = read(trial_dir / RECORD_NAME)
    if record is None or record.get("status") not in FINISHED:
        return trial_dir, None  # empty, or an unfinished record of another config: free to take
    return keyed, None  # never overwrite a finished record of another config
