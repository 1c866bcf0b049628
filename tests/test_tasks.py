"""Task data: the fixed, stratified split and its cache.

pytest tests/test_tasks.py
"""

from __future__ import annotations

import json
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


OWN = Path(__file__).parent.parent / "examples" / "own-data"  # the files README's own-data example uses


def test_own_data_as_split_files_one_file_or_a_folder(tmp_path: Path):
    """`task.dataset.data_files.train=... .test=...` (no `+`), one file (split here) or a folder: the rows, and a
    name from the folder or file, never a path."""
    given = trial_config("task=files", f"task.dataset.data_files.train={OWN}/train.csv",
                         f"task.dataset.data_files.test={OWN}/test.csv").task
    splits = tasks.raw_splits(given, tmp_path)
    lines = {name: len((OWN / f"{name}.csv").read_text().strip().splitlines()) - 1 for name in ("train", "test")}
    assert len(splits["test"]) == lines["test"] and given.name == "own-data"
    # no validation file: validation is carved from train (never the test rows, which choosing must not read)
    assert len(splits["train"]) + len(splits["validation"]) == lines["train"]
    assert len(splits["validation"]) == round(0.1 / 0.8 * lines["train"])
    texts = {name: {r["text"] for r in rows} for name, rows in splits.items()}
    assert not texts["validation"] & texts["test"] and not texts["validation"] & texts["train"]
    folder = trial_config("task=files", f"task.dataset.data_files={OWN}").task
    assert folder.name == "own-data" and tasks.raw_splits(folder, tmp_path) == splits  # split by the file names
    one = trial_config("task=files", f"task.dataset.data_files={OWN}/train.csv", "task.name=reviews").task
    split_here = tasks.raw_splits(one, tmp_path)
    assert one.name == "reviews" and sum(map(len, split_here.values())) == lines["train"]
    assert len(split_here["test"]) == round(0.2 * lines["train"])


def test_the_own_data_command_runs_and_names_the_trial_after_the_task(tmp_path: Path):
    """README's own-data command, on the tiny model: the trial folder is named from task.name, not from paths."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "bench.cli", "model=tiny-bert", "task=files", "task.name=reviews",
               f"task.dataset.data_files.train={OWN}/train.csv", f"task.dataset.data_files.test={OWN}/test.csv",
               "train.max_steps=4", "train.warmup_steps=1", "train.threads=1", f"results_dir={tmp_path}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [record] = list(tmp_path.rglob("record.json"))
    overrides = "train.max_steps=4,train.threads=1,train.warmup_steps=1"
    assert record.parent.name == f"tiny-bert__reviews__lora__seed0__{overrides}"
    saved = json.loads(record.read_text())
    assert saved["identity"]["task"] == "reviews" and saved["status"] == "ok", saved.get("error")
    assert saved["config"]["task"]["dataset"]["data_files"]["train"] == f"{OWN}/train.csv"  # paths: in the config
