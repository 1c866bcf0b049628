"""Switching the active adapter between requests, three ways, each timed over `serve.swap_repeats` switches:

  set        set_adapter: all K adapters resident, the switch only changes which one layers use (own bottleneck
             adapters: the next task's resident tensors copied in)
  hotswap    one adapter resident, its tensors replaced in place by another's read from disk (peft's hotswap_adapter,
             LoRA only): memory stays that of one adapter whatever K
  merge      merge-serve-unmerge: the active adapter folded into the base weights (no inference overhead), so a
             switch is unmerge + merge of the next
A switch needs a second adapter: at K = 1 every swap figure is n/a. Where a host cannot do a kind, the figure is
n/a and `swap_<kind>_na` says why. The first switch of each kind is timed apart (`swap_<kind>_first_ms`): it pays
for what later switches find ready (peft's lazy setup, caches), and folded into the repeats it would move their
p90. The hot-swap's first switch reads its adapter's files after their file cache was dropped (cold, where the OS
allows it: `swap_hotswap_first_cache` says); its repeats read files the page cache then holds.
"""

from __future__ import annotations

import functools

import torch

from bench.serve import cache
from bench.serve.host import NotAvailable
from bench.serve.load import timed
from bench.serve.traffic import percentiles

ONE_ADAPTER = "one adapter: nothing to switch to"


def measure(host, repeats: int, device) -> dict:
    names = host.names
    metrics = {}
    for kind, switch in (("set", _set), ("hotswap", _hotswap), ("merge", _merge)):
        try:
            if len(names) < 2:
                raise NotAvailable(ONE_ADAPTER)
            how, first, seconds = switch(host, names, repeats, device, metrics)
        except NotAvailable as reason:
            metrics.update({f"swap_{kind}_ms_p50": None, f"swap_{kind}_ms_p90": None, f"swap_{kind}_first_ms": None,
                            f"swap_{kind}_na": str(reason)})
            continue
        p50, p90 = percentiles([s * 1000 for s in seconds])
        metrics.update({f"swap_{kind}_ms_p50": p50, f"swap_{kind}_ms_p90": p90, f"swap_{kind}_first_ms": first * 1000,
                        f"swap_{kind}_how": how})
    return metrics


def _targets(names: list[str], repeats: int) -> list[str]:
    """Each switch goes to another adapter than the one active: names[1], names[2], ..., names[0], names[1], ...
    (one more than `repeats`: the first switch, timed apart)."""
    return [names[(index + 1) % len(names)] for index in range(repeats + 1)]


def _timed_switches(switch, targets: list[str], device) -> tuple[float, list[float]]:
    """(seconds of the first switch, seconds of each later one)."""
    seconds = [timed(functools.partial(switch, name), device) for name in targets]
    return seconds[0], seconds[1:]


def _set(host, names, repeats, device, metrics):
    host.activate(names[0])
    with torch.no_grad():
        first, seconds = _timed_switches(host.activate, _targets(names, repeats), device)
    host.activate(names[0])
    how = "set_adapter" if host.kind == "peft" else "resident tensors copied into the adapter modules"
    return how, first, seconds


def _hotswap(host, names, repeats, device, metrics):
    """Hot-swaps into the active adapter's slot, then puts its own weights back (the K stay as they were)."""
    how = host.hotswap_how()
    host.activate(names[0])
    targets = _targets(names, repeats)
    metrics["swap_hotswap_first_cache"] = cache.drop([host.paths[targets[0]]])["cache"]
    with torch.no_grad():
        try:  # peft checks the adapters fit before it changes a tensor: a refusal leaves the model as it was
            first = timed(functools.partial(host.hotswap, host.paths[targets[0]]), device)
        except (RuntimeError, ValueError, KeyError, NotImplementedError) as error:
            raise NotAvailable(f"hot-swap refused: {type(error).__name__}: {str(error).strip()[:200]}") from error
        seconds = [timed(functools.partial(host.hotswap, host.paths[name]), device) for name in targets[1:]]
        host.hotswap(host.paths[names[0]])
    return how, first, seconds


def _merge(host, names, repeats, device, metrics):
    host.check_merge()

    def switch(name):
        host.unmerge()
        host.merge(name)

    with torch.no_grad():
        host.merge(names[0])
        first, seconds = _timed_switches(switch, _targets(names, repeats), device)
        host.unmerge()
    host.activate(names[0])
    return "unmerge the active adapter, merge the next", first, seconds
