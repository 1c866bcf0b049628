"""Bytes on disk for K tasks, both ways: K adapter folders (one base kept once), or K full model copies.

Both are read from the files written (sizes of every file in the folders), never multiplied from parameter counts.
The adapters' figure leaves out the base model, which both ways need once (recorded as `full_model_bytes`).
"""

from __future__ import annotations

import statistics
from pathlib import Path


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())


def adapters(paths: list[Path]) -> dict:
    sizes = [folder_bytes(path) for path in paths]
    return {"storage_adapters_bytes": sum(sizes), "adapter_disk_bytes": statistics.median(sizes)}


def full(copy_sizes: list[int], k: int) -> dict:
    """K full copies: the written copies' bytes where all K were written, else extrapolated (and labelled so) from
    those that were."""
    if not copy_sizes:
        return {"storage_full_bytes": None, "storage_full_source": "n/a: no full copy written"}
    if len(copy_sizes) >= k:
        return {"storage_full_bytes": sum(copy_sizes[:k]), "storage_full_source": "measured"}
    return {"storage_full_bytes": statistics.median(copy_sizes) * k,
            "storage_full_source": f"extrapolated from {len(copy_sizes)} written copies"}
