"""What a serving trial's timings run under: glibc's fast malloc policy (not the memory window's exact one), loads
from a dropped file cache where the OS allows it, and a first switch timed apart from the repeated ones.

pytest tests/test_serve_policy.py        (~30 s: tiny-bert, fresh LoRA adapters)
"""

from __future__ import annotations

import os
import sys
import time

import pytest

from bench.results import record as records
from bench.serve import cache, load, scenario, swap, traffic
from bench.serve import config as serve_config
from bench.serve.host import NotAvailable
from bench.trackers import memory

SMALL = ["model=tiny-bert", "method=lora", "task.max_train_samples=64", "task.max_eval_samples=16",
         "train.max_length=32", "serve.requests=8", "serve.batch_size=4", "serve.max_length=16", "serve.repeats=1",
         "serve.swap_repeats=3", "train.threads=1"]


def _policy_seen(monkeypatch, module, name: str, seen: dict) -> None:
    """Record the malloc policy in force whenever `module.name` runs."""
    inner = getattr(module, name)

    def wrapped(*args, **kwargs):
        seen[module.__name__.rsplit(".", 1)[-1]] = memory.malloc_policy()
        return inner(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_serving_is_timed_under_the_fast_malloc_policy(monkeypatch, tmp_path):
    """The base loads through the training trial's path, which sets the exact policy for the memory window; every
    load, swap and request timing must run under the fast one, and the record says so."""
    seen = {}
    for module, name in ((load, "load_all"), (swap, "measure"), (traffic, "measure")):
        _policy_seen(monkeypatch, module, name, seen)
    done = scenario.run(serve_config.compose(*SMALL, "serve.k=2", f"serve.work_dir={tmp_path}"))
    assert done.status == records.OK, done.error
    assert seen == {"load": memory.FAST, "swap": memory.FAST, "traffic": memory.FAST}
    assert done.metrics["serve_malloc_policy"] == memory.FAST
    m = done.metrics
    assert m["load_cache"].startswith(("cold", "warm")) and m["copies_load_cache"].startswith(("cold", "warm"))
    assert m["swap_set_first_ms"] > 0 and m["swap_hotswap_first_ms"] > 0 and m["swap_merge_first_ms"] > 0
    assert m["swap_hotswap_first_cache"].startswith(("cold", "warm"))


def test_a_dropped_file_cache_leaves_a_just_written_file_uncached(tmp_path):
    """Adapters and full copies are loaded right after they were written: from memory, unless the cache is dropped."""
    (tmp_path / "adapter.safetensors").write_bytes(os.urandom(4 * 2**20))
    written = cache.cached_fraction(cache.files([tmp_path]))
    if written is None or not hasattr(os, "posix_fadvise"):
        pytest.skip("no mincore or posix_fadvise here")
    assert written > 0.9  # just written: in the page cache
    dropped = cache.drop([tmp_path])
    if dropped["cached_fraction"] > 0.05:
        pytest.skip(f"this file system keeps its files in memory ({dropped['cache']})")
    assert dropped["cache"].startswith("cold: ")
    assert cache.cached_fraction(cache.files([tmp_path])) < 0.05


class _SlowFirstHost:
    """set_adapter whose first call pays a one-off setup (as peft's first switch can); the others are quick."""

    kind, names, paths = "peft", ["a", "b"], {}

    def __init__(self):
        self.calls = 0

    def activate(self, name):
        self.calls += 1
        time.sleep(0.2 if self.calls == 2 else 0.001)  # call 1 sets the starting adapter, untimed

    def hotswap_how(self):
        raise NotAvailable("not this host")

    def check_merge(self):
        raise NotAvailable("not this host")


def test_the_first_switch_is_timed_apart_from_the_repeated_ones():
    measured = swap.measure(_SlowFirstHost(), repeats=3, device="cpu")
    assert measured["swap_set_first_ms"] >= 200
    assert measured["swap_set_ms_p90"] < 100  # the one-off setup is not among the repeats
    assert measured["swap_hotswap_first_ms"] is None and measured["swap_hotswap_na"] == "not this host"
