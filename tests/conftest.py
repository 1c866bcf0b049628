"""Shared fixtures: configs composed from conf/ the way `peft-bench` composes them, sized for fast CPU tests.

pytest tests/            (fast suite; slow and GPU tests: pytest -m slow / -m gpu)
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch

from bench import config, methods
from bench.config import compose_raw  # noqa: F401 (tests compose raw configs through here)

config.register(methods.registry())  # the method schemas composing needs: the config does not import the registry

# submitit (the SLURM launcher's engine) runs logging.config.dictConfig when first imported, which closes every
# handler configured before it; a test importing it after one that imported absl (rouge-score's logging) closed
# pytest's own capture stream, and the run died with "I/O operation on closed file". Imported first, it closes none.
try:
    import submitit  # noqa: F401
except ImportError:  # the cluster extra is not installed: nothing to order
    pass

# Small enough that a tiny-model trial takes a few seconds on 2 cores.
FAST = [
    "train.max_steps=4", "train.warmup_steps=1", "train.batch_size=4", "train.eval_batch_size=8",
    "train.max_length=32", "train.latency_repeats=3", "train.latency_warmup=1", "train.probe_samples=8",
    "train.log_every=1", "task.max_train_samples=64", "task.max_eval_samples=16",
]


def trial_config(*overrides: str, fast: bool = True) -> config.TrialConfig:
    """TrialConfig composed from conf/ like the CLI does, with FAST sizes first so overrides win."""
    return config.compose(*((FAST if fast else []) + list(overrides)))


@pytest.fixture
def make_config():
    return trial_config


@pytest.fixture(autouse=True)
def _quiet():
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    yield


@pytest.fixture(autouse=True)
def _threads_restored():
    """A trial run in the test process sets torch's threads to its `train.threads`; the next test gets the process's
    own count back (two threads on a core another worker uses slow a tiny model's ops ~100x)."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
