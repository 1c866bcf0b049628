"""The full-fine-tuning baseline: K tasks served as K full model copies (base + task head each).

The task model is saved once as full fine-tuning stores a task; copies are written (storage) and loaded one by one
(from_pretrained, then every weight read into memory) while the next still fits `serve.copies_memory_fraction` of
the memory available when the phase starts. Each copy's file cache is dropped before its timed load where the OS
allows it (`copies_load_cache` says how, for the copy that was left warmest). Memory (RSS on CPU, allocator on
GPU) and load seconds are measured for the copies that fit; beyond, K copies are extrapolated from them, and
`copies_source` says so with the count.
"""

from __future__ import annotations

import functools
import shutil
import statistics
from pathlib import Path

import psutil
import torch

from bench.models import make_resident
from bench.serve import cache, storage
from bench.serve.load import resident_bytes, timed
from bench.trackers.memory import tensor_bytes


def save_first(model, folder: Path) -> Path:
    """The task model as one full fine-tuned task is stored (before any adapter is attached to it)."""
    path = Path(folder) / "copy0"
    model.save_pretrained(path)
    return path


def available_bytes(device) -> int:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return psutil.virtual_memory().available


def _load(model_cls, path: Path, device):
    model = model_cls.from_pretrained(str(path), dtype=torch.float32).to(device).eval()
    make_resident(model)  # from_pretrained maps the file: a copy serves only once its weights are read in
    return model


def _load_into(copies: list, model_cls, path: Path, device) -> None:
    copies.append(_load(model_cls, path, device))


def measure(model_cls, first: Path, weights_bytes: int, k: int, device, fraction: float) -> dict:
    """Load up to K copies of the model saved at `first` while they fit; memory, seconds and bytes on disk."""
    budget = fraction * available_bytes(device)
    before = resident_bytes(device)
    copies, seconds, sizes, dropped = [], [], [], []
    for index in range(k):
        if (index + 1) * weights_bytes > budget:
            break
        path = first if index == 0 else Path(shutil.copytree(first, first.with_name(f"copy{index}")))
        sizes.append(storage.folder_bytes(path))
        dropped.append(cache.drop([path]))
        seconds.append(timed(functools.partial(_load_into, copies, model_cls, path, device), device))
    added = resident_bytes(device) - before
    count = len(copies)
    copies.clear()
    resident_bytes(device)  # the copies' memory handed back before anything else is measured
    warmest = max(dropped, key=lambda d: -1 if d["cached_fraction"] is None else d["cached_fraction"], default=None)
    metrics = {"copies_measured": count, "copies_budget_bytes": int(budget),
               "full_model_bytes": sizes[0] if sizes else None,
               "copies_load_cache": warmest["cache"] if warmest else None,
               **storage.full(sizes, k)}
    if count == 0:
        return {**metrics, "copies_mem_bytes": None, "copies_load_s": None, "copies_load_s_p50": None,
                "copies_source": f"n/a: one copy ({weights_bytes / 2**20:.0f} MiB) does not fit the budget"}
    scale = k / count
    return {**metrics, "copies_mem_bytes": added * scale, "copies_load_s": sum(seconds) * scale,
            "copies_load_s_p50": statistics.median(seconds),
            "copies_source": "measured" if count == k else f"extrapolated from {count} loaded copies"}


def weights(model) -> int:
    return tensor_bytes(list(model.parameters()) + list(model.buffers()))
