"""Shared fixtures: compose real configs from conf/ with overrides, sized for fast CPU tests.

pytest tests/            (fast suite; slow and GPU tests: pytest -m slow / -m gpu)
"""

from __future__ import annotations

import os
import warnings

import pytest
from hydra import compose, initialize_config_dir

from bench import config
from bench.cli import CONF_DIR

# Small enough that a tiny-model trial takes a few seconds on 2 cores.
FAST = [
    "train.max_steps=4", "train.warmup_steps=1", "train.batch_size=4", "train.eval_batch_size=8",
    "train.max_length=32", "train.latency_repeats=3", "train.latency_warmup=1", "train.probe_samples=8",
    "train.log_every=1", "task.max_train_samples=64", "task.max_eval_samples=16",
]


def compose_raw(*overrides: str) -> dict:
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        composed = compose(config_name="config", overrides=list(overrides))
    raw = OmegaConf.to_container(composed, resolve=True)
    for key in ("force", "results_dir", "trial_timeout"):
        raw.pop(key, None)
    return raw


def trial_config(*overrides: str, fast: bool = True) -> config.TrialConfig:
    """TrialConfig composed from conf/ like the CLI does, with FAST sizes first so overrides win."""
    return config.from_dict(compose_raw(*((FAST if fast else []) + list(overrides))))


@pytest.fixture
def make_config():
    return trial_config


@pytest.fixture(autouse=True)
def _quiet():
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    yield
