"""One serving trial: base -> K adapters -> load -> output checks -> swap -> traffic -> K full copies -> record.

The record follows the trial schema (status ok | failed | skipped, error with phase, config, key, provenance), so
resume, consolidation and the report read it like any trial's; its figures are the columns bench/serve/ documents.
Phases are timed like a training trial's (`seconds_<phase>`); a failure records the phase it happened in.
"""

from __future__ import annotations

import copy
import functools
import tempfile
from pathlib import Path

from bench import methods, models
from bench.config import ConfigError
from bench.results.record import TrialRecord
from bench.serve import adapters, cache, full_copies, load, storage, swap, traffic
from bench.serve import host as hosts
from bench.serve.config import FRESH, ServeTrial
from bench.trial import Measured, Phases, autocast, compute_dtype, load_base
from bench.trial.record import recorded


def run(cfg: ServeTrial) -> TrialRecord:
    """Run the serving trial; never raises for a trial failure: the record says ok, failed (with phase) or skipped."""
    phases, found = Phases(), Measured({"serve_k": cfg.serve.k})
    return recorded(cfg.to_dict(), cfg.key(), cfg.trial.seed, lambda: _run(cfg, phases, found.figures), phases, found,
                    traceback_when_skipped=False)


def _run(cfg: ServeTrial, phases: Phases, metrics: dict) -> None:
    trial, serve = cfg.trial, cfg.serve
    with phases("config"):
        method = methods.get(trial.method.name)
        method_cfg = method.build_config(trial.method.params)
    base = load_base(trial, phases, Measured(metrics), method_cfg)
    device, names = base.device, adapters.names(serve.k)
    metrics["serve_malloc_policy"] = load.fast_malloc(device)
    amp = functools.partial(autocast, trial, device)
    with tempfile.TemporaryDirectory(prefix="peft-bench-serve-", dir=serve.work_dir) as work:
        with phases("adapters"):
            paths, kind = _adapters(cfg, base, method, method_cfg, Path(work))
            metrics.update(storage.adapters(paths), serve_host=kind, adapters_source=serve.adapters)
        pool = traffic.requests([row["text"] for row in base.data.test_rows], base.tokenizer, serve, device)
        copies = _keep_full_copy(cfg, base.model, Path(work), phases)
        reference = copy.deepcopy(base.model)  # the base alone, timed beside the adapters (resident before any)
        with phases("adapters_load"):
            host = hosts.make(kind, base.model, method, method_cfg, base.arch)
            metrics.update(_load(cfg, host, paths, names, device))
        with phases("check"):
            metrics.update(traffic.check_outputs(host, pool, serve.batch_size, compute_dtype(trial, device), amp))
        with phases("swap"):
            metrics.update(swap.measure(host, serve.swap_repeats, device))
        with phases("traffic"):
            metrics.update(traffic.measure(host, reference, pool, serve, trial.seed, device, amp,
                                           metrics.get("mixed_na")))
        del reference
        with phases("copies"):
            metrics.update(copies() if copies else {"copies_source": "n/a: serve.copies=false"})


def _adapters(cfg: ServeTrial, base, method, method_cfg, work: Path) -> tuple[list[Path], str]:
    """The K adapter folders (fresh ones written under `work`) and the kind of host that serves them."""
    kind, tuned = adapters.host_kind(cfg, base.model, method, method_cfg, base.arch)
    if cfg.serve.adapters == FRESH:
        return adapters.fresh(tuned, cfg.serve.k, cfg.trial.seed, cfg.serve.fresh_noise, work / "adapters"), kind
    del tuned
    source = models.source(cfg.trial.model, Path(cfg.trial.cache_dir).expanduser())
    return adapters.from_sweep(cfg, source), kind


def _keep_full_copy(cfg: ServeTrial, model, work: Path, phases: Phases):
    """Save the task model as full fine-tuning stores a task, before adapters attach to it; the returned callable
    measures the K copies at the end (None with serve.copies=false)."""
    if not cfg.serve.copies:
        return None
    with phases("copies_save"):
        first = full_copies.save_first(model, work / "copies")
        weights = full_copies.weights(model)
    device = next(model.parameters()).device
    return functools.partial(full_copies.measure, type(model), first, weights, cfg.serve.k, device,
                             cfg.serve.copies_memory_fraction)


def _load(cfg: ServeTrial, host, paths: list[Path], names: list[str], device) -> dict:
    """Load figures, from a dropped file cache where the OS allows it (`load_cache` says); a saved adapter whose
    tensors do not fit this base is bad input, named by its key."""
    dropped = cache.drop(paths)
    try:
        return {**load.load_all(host, paths, names, device), "load_cache": dropped["cache"]}
    except RuntimeError as error:
        if cfg.serve.adapters == FRESH or "size mismatch" not in str(error):
            raise
        raise ConfigError(f"`serve.adapters` ({cfg.serve.adapters!r}) holds adapters of another base model: "
                          f"{str(error).strip().splitlines()[-1].strip()}") from error
