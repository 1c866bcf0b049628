"""What a serving trial's timings run under: glibc's fast malloc policy (not the memory window's exact one), loads
from a dropped file cache where the OS allows it, and a first switch timed apart from the repeated ones.

pytest tests/test_serve_policy.py        (~30 s: tiny-bert, fresh LoRA adapters)
"""

from __future__ import annotations

import sys

import pytest

from bench.results import record as records
from bench.serve import config as serve_config
from bench.serve import load, scenario, swap, traffic
from bench.trackers import memory

SMALL = ["model=tiny-bert", "method=lora", "task.max_train_samples=64", "task.max_eval_samples=16",
         "train.max_length=32", "serve.requests=8", "serve.batch_size=4", "serve.max_length=16", "serve.repeats=1",
         "serve.swap_repeats=3", "train.threads=1", "serve.copies=false"]


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
