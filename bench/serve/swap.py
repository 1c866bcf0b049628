"""Switching the active adapter between requests, three ways, each timed over `serve.swap_repeats` switches:

  set        set_adapter: all K adapters resident, the switch only changes which one layers use (own bottleneck
             adapters: the next task's resident tensors copied in)
  hotswap    one adapter resident, its tensors replaced in place by another's read from disk (peft's hotswap_adapter,
             LoRA only): memory stays that of one adapter whatever K
  merge      merge-serve-unmerge: the active adapter folded into the base weights (no inference overhead), so a
             switch is unmerge + merge of the next
A switch needs a second adapter: at K = 1 every swap figure is n/a. Where a host cannot do a kind, the figure is
n/a and `swap_<kind>_na` says why.
"""

from __future__ import annotations

import functools

import torch

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
            how, seconds = switch(host, names, repeats, device)
        except NotAvailable as reason:
            metrics.update({f"swap_{kind}_ms_p50": None, f"swap_{kind}_ms_p90": None, f"swap_{kind}_na": str(reason)})
            continue
        p50, p90 = percentiles([s * 1000 for s in seconds])
        metrics.update({f"swap_{kind}_ms_p50": p50, f"swap_{kind}_ms_p90": p90, f"swap_{kind}_how": how})
    return metrics


def _targets(names: list[str], repeats: int) -> list[str]:
    """Each switch goes to another adapter than the one active: names[1], names[2], ..., names[0], names[1], ..."""
    return [names[(index + 1) % len(names)] for index in range(repeats)]


def _set(host, names, repeats, device):
    host.activate(names[0])
    with torch.no_grad():
        seconds = [timed(functools.partial(host.activate, name), device) for name in _targets(names, repeats)]
    host.activate(names[0])
    how = "set_adapter" if host.kind == "peft" else "resident tensors copied into the adapter modules"
    return how, seconds


def _hotswap(host, names, repeats, device):
    """Hot-swaps into the active adapter's slot, then puts its own weights back (the K stay as they were)."""
    how = host.hotswap_how()
    host.activate(names[0])
    with torch.no_grad():
        try:  # peft checks the adapters fit before it changes a tensor: a refusal leaves the model as it was
            host.hotswap(host.paths[names[0]])
        except (RuntimeError, ValueError, KeyError, NotImplementedError) as error:
            raise NotAvailable(f"hot-swap refused: {type(error).__name__}: {str(error).strip()[:200]}") from error
        targets = _targets(names, repeats)
        seconds = [timed(functools.partial(host.hotswap, host.paths[name]), device) for name in targets]
        host.hotswap(host.paths[names[0]])
    return how, seconds


def _merge(host, names, repeats, device):
    host.check_merge()

    def switch(name):
        host.unmerge()
        host.merge(name)

    with torch.no_grad():
        host.merge(names[0])
        seconds = [timed(functools.partial(switch, name), device) for name in _targets(names, repeats)]
        host.unmerge()
    host.activate(names[0])
    return "unmerge the active adapter, merge the next", seconds
