"""Task catalogue: rows -> deterministic split -> tokenized, cached datasets, plus the task's evaluation.

A task is `classification` (text -> class) or `generation` (text -> target text); its kind picks the module
that tokenizes and scores it (classification.py, generation.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.common.files import read_json, write_atomic
from bench.config import ConfigError, TaskConfig, TrainConfig, closest
from bench.tasks import bbc, generic

SPLIT_SEED = 0  # the split is fixed across trials and seeds: seeds vary training, not the data
SPLIT_VERSION = 2  # in the split cache's key: 2 keeps near-duplicates in one split
# task.source -> rows(cfg): {"train": [...], "test": [...], ...} as given, or one list of rows to split here
SOURCES = {"bbc": bbc.rows, "files": generic.file_rows, "hub": generic.hub_rows}


@dataclass
class TaskData:
    cfg: TaskConfig
    train: object  # tokenized datasets.Dataset
    test_rows: list[dict]  # held-out rows scored for quality
    label_names: list[str] = field(default_factory=list)
    probe_pairs: list[tuple[str, str]] = field(default_factory=list)  # never-trained (query, document) pairs

    @property
    def num_labels(self) -> int | None:
        return len(self.label_names) or None


def raw_splits(cfg: TaskConfig, cache_dir: Path | None = None) -> dict[str, list[dict]]:
    """{"train", "validation", "test"} rows; split deterministically, stratified, where the source has no splits
    (the split's row indices cached under cache_dir/splits when given)."""
    if cfg.source not in SOURCES:
        raise ConfigError(f"`task.source` ({cfg.source!r}) must be one of {', '.join(SOURCES)}"
                          f"{closest(str(cfg.source), SOURCES)}")
    rows = SOURCES[cfg.source](cfg)
    if isinstance(rows, dict):
        test = rows.get("test") or rows.get("validation")
        if test is None:
            raise ConfigError(f"`task.dataset` ({cfg.dataset}) has splits {sorted(rows)} "
                              "but no test or validation split")
        if rows.get("test") and rows.get("validation"):
            return {"train": rows["train"], "validation": rows["validation"], "test": rows["test"]}
        # One held-out split only (GLUE-style train + validation, or train + test): it is the test split, and the
        # validation split is carved from train, so nothing chosen on validation ever reads the reported split.
        train, validation = _carve_validation(rows["train"], cfg, cache_dir)
        return {"train": train, "validation": validation, "test": test}
    return _split(rows, cfg, cache_dir)


def _carve_validation(train: list[dict], cfg: TaskConfig, cache_dir: Path | None) -> tuple[list[dict], list[dict]]:
    """A stratified validation split out of the source's train split: validation_fraction of the rows a split
    source would have had, i.e. validation_fraction / (1 - test_fraction) of train."""
    carve_cfg = replace(cfg, test_fraction=cfg.validation_fraction / (1 - cfg.test_fraction),
                                    validation_fraction=0.0)
    parts = _split(train, carve_cfg, cache_dir)
    return parts["train"], parts["test"]


def _split(rows: list[dict], cfg: TaskConfig, cache_dir: Path | None) -> dict[str, list[dict]]:

    path = cache_dir / "splits" / f"{cfg.name}-{_split_key(rows, cfg)}.json" if cache_dir else None
    indices = read_json(path) if path else None  # None when missing or torn: computed again
    if indices is None:
        indices = _stratified_indices(rows, cfg)
        if path:
            write_atomic(path, indices)
    return {name: [rows[i] for i in indices[name]] for name in ("train", "validation", "test")}


def _stratified_indices(rows: list[dict], cfg: TaskConfig) -> dict[str, list[int]]:
    """Stratified train/validation/test indices; near-duplicates (near_duplicate_clusters) are split as one row, the
    first of them, and follow it into its split."""
    # Cached by the caller: sklearn (with scipy) takes about 1 s to import, a third of a warm trial's start-up.
    from sklearn.model_selection import train_test_split

    members = near_duplicate_clusters(rows)  # first index -> every index of its cluster
    heads = sorted(members)
    groups = {i: rows[i]["group"] for i in heads}
    try:
        rest, test = train_test_split(heads, test_size=cfg.test_fraction, random_state=SPLIT_SEED,
                                      stratify=[groups[i] for i in heads])
        fraction = cfg.validation_fraction / (1 - cfg.test_fraction)
        train, validation = (train_test_split(rest, test_size=fraction, random_state=SPLIT_SEED,
                                              stratify=[groups[i] for i in rest]) if fraction else (rest, []))
    except ValueError as error:  # a class too small to have rows in each split, or too few rows at all
        raise ConfigError(f"`task.test_fraction` ({cfg.test_fraction}) and `task.validation_fraction` "
                          f"({cfg.validation_fraction}) cannot split {len(rows)} rows of `task` ({cfg.name!r}) "
                          f"stratified by class: {str(error).splitlines()[0]}") from None
    parts = {"train": train, "validation": validation, "test": test}
    return {name: [int(i) for head in part for i in members[head]] for name, part in parts.items()}


def _normalised(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def near_duplicate_clusters(rows: list[dict]) -> dict[int, list[int]]:
    """{first index: its cluster's indices}: rows that share a normalised (case, punctuation, spacing) headline or
    first paragraph, transitively, are one cluster. A row's `pair` (headline, first paragraph) names them; rows
    without one (own data) are clusters of one. BBC News holds such articles (a story and its update): 5 bbc-topic
    test articles shared a first paragraph with a training article and 8 a headline."""
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with: dict[tuple[int, str], int] = {}
    for i, row in enumerate(rows):
        for field_index, text in enumerate(row.get("pair") or ()):
            key = (field_index, _normalised(str(text)))
            if not key[1]:
                continue  # an empty headline or paragraph says nothing about the article
            if key in first_with:
                a, b = root(i), root(first_with[key])
                parent[max(a, b)] = min(a, b)  # the smallest index is the cluster's head
            else:
                first_with[key] = i
    clusters: dict[int, list[int]] = {}
    for i in range(len(rows)):
        clusters.setdefault(root(i), []).append(i)
    return clusters


def _split_key(rows: list[dict], cfg: TaskConfig) -> str:
    shape = [cfg.test_fraction, cfg.validation_fraction, SPLIT_SEED, len(rows), SPLIT_VERSION]
    digest = hashlib.sha256(json.dumps(shape).encode())
    for row in rows:
        digest.update(json.dumps([row["text"], str(row["label"]), str(row["group"]), row.get("pair")]).encode())
    return digest.hexdigest()[:16]


def _module(kind: str):
    # torch: the task catalogue (names, labels, splits) is read before any model loads, by faces that never train
    from bench.tasks import classification, generation

    return classification if kind == "classification" else generation


def train_rows(cfg: TaskConfig, splits: dict) -> list[dict]:
    return splits["train"][: cfg.max_train_samples] if cfg.max_train_samples else splits["train"]


def label_names(cfg: TaskConfig, splits: dict) -> list[str]:
    """Class names seen in training, sorted: class id i is label_names[i]. Empty for generation tasks."""
    return sorted({str(r["label"]) for r in train_rows(cfg, splits)}) if cfg.kind == "classification" else []


def load(cfg: TaskConfig, splits: dict, tokenizer, model_kind: str, train_cfg: TrainConfig,
         cache_dir: Path) -> TaskData:
    """Tokenized (and cached) training set, held-out rows and probe pairs, from `raw_splits(cfg)`."""
    rows = train_rows(cfg, splits)
    names = label_names(cfg, splits)
    module = _module(cfg.kind)
    key = _cache_key(cfg, tokenizer, model_kind, train_cfg.max_length, rows)
    train = _cached(cache_dir / "data" / key,
                    lambda: module.tokenize(rows, tokenizer, cfg, model_kind, train_cfg.max_length, names))
    test_rows = splits["test"][: cfg.max_eval_samples]
    pairs = [r["pair"] for r in splits["test"] if "pair" in r]
    return TaskData(cfg, train, test_rows, names, pairs)


def _cache_key(cfg: TaskConfig, tokenizer, model_kind: str, max_length: int, rows: list[dict]) -> str:
    digest = hashlib.sha256()
    shape = [cfg.name, cfg.kind, cfg.prompt_template, cfg.max_new_tokens, model_kind, max_length]
    digest.update(json.dumps(shape).encode())
    digest.update(tokenizer.name_or_path.encode() + str(len(tokenizer)).encode())
    for row in rows:
        digest.update(json.dumps([row["text"], str(row["label"])]).encode())
    return f"{cfg.name}-{digest.hexdigest()[:16]}"


def _cached(folder: Path, build):
    """Tokenized dataset from the cache folder, or built and saved there (written to a temp name, then renamed)."""
    import datasets

    if (folder / "dataset_info.json").exists():
        try:
            return datasets.load_from_disk(str(folder))
        except (OSError, ValueError):
            pass  # a corrupt cache is rebuilt below
    dataset = build()
    staging = folder.with_name(folder.name + ".staging")
    dataset.save_to_disk(str(staging))
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return datasets.load_from_disk(str(folder))


def evaluate(data: TaskData, model, tokenizer, model_kind: str, batch_size: int, max_length: int,
             device) -> dict[str, float]:
    """Quality on the held-out rows: {metric name: value}."""
    return _module(data.cfg.kind).evaluate(data, model, tokenizer, model_kind, batch_size, max_length, device)


def collator(kind: str, tokenizer):
    return _module(kind).collator(tokenizer)
