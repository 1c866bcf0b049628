"""Task data: the fixed, stratified split and its cache.

pytest tests/test_tasks.py
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bench import tasks
from tests.conftest import trial_config


def test_split_is_disjoint_stratified_and_the_same_from_the_cache(tmp_path: Path):
    cfg = trial_config("task=bbc-topic").task
    computed = tasks.raw_splits(cfg, tmp_path)
    cache_files = list((tmp_path / "splits").glob("*.json"))
    assert len(cache_files) == 1
    cached = tasks.raw_splits(cfg, tmp_path)
    assert cached == computed == tasks.raw_splits(cfg)  # cache or none: one split

    rows = {name: {id(r) for r in split} for name, split in computed.items()}  # BBC has duplicate texts: by row
    assert not rows["train"] & rows["test"] and not rows["train"] & rows["validation"]
    train_share = Counter(r["label"] for r in computed["train"])
    test_share = Counter(r["label"] for r in computed["test"])
    for label in train_share:  # stratified: each class keeps its share of the rows in both splits
        assert abs(train_share[label] / len(computed["train"]) - test_share[label] / len(computed["test"])) < 0.01


def test_torn_split_cache_is_computed_again(tmp_path: Path):
    cfg = trial_config("task=bbc-topic").task
    computed = tasks.raw_splits(cfg, tmp_path)
    cache_file = next((tmp_path / "splits").glob("*.json"))
    cache_file.write_text('{"train": [1, 2')
    assert tasks.raw_splits(cfg, tmp_path) == computed
