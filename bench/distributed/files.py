"""The files a distributed trial's launcher and its ranks share in the group's run folder: the trial's config (in),
rank 0's result (out), and each rank's status (pid, phase) and error, by which the launcher says which rank failed,
where and why. Apart from both sides (bench.launch.ranks, bench.launch.rank): the launcher never imports a rank's code.
"""

from __future__ import annotations

from pathlib import Path

CONFIG_NAME = "config.json"
RESULT_NAME = "result.json"  # rank 0's metrics and items (the launcher turns them into the record)


def status_path(run_dir: Path, rank: int) -> Path:
    return Path(run_dir) / f"rank{rank}.json"


def error_path(run_dir: Path, rank: int) -> Path:
    return Path(run_dir) / f"rank{rank}.error.json"
