"""Near-duplicate articles (same normalised headline or first paragraph) fall into one split.

pytest tests/test_near_duplicates.py
"""

from __future__ import annotations

import dataclasses

from bench import tasks
from bench.tasks import _normalised, near_duplicate_clusters
from tests.conftest import trial_config


def _where(parts: dict) -> dict[int, str]:
    return {i: name for name, indices in parts.items() for i in indices}


def _rows(count: int) -> list[dict]:
    return [{"text": f"body {i}", "label": "ab"[i % 2], "group": "ab"[i % 2],
             "pair": (f"Headline {i}", f"First paragraph {i}.")} for i in range(count)]


def test_rows_sharing_a_normalised_headline_or_first_paragraph_are_one_cluster_transitively():
    rows = _rows(6)
    rows[3]["pair"] = ("HEADLINE  0!", "Something else.")  # row 0's headline, other case, spacing, punctuation
    rows[5]["pair"] = ("Another story", "something ELSE")  # row 3's first paragraph: joins 0 through 3
    rows[4]["pair"] = ("", "")  # empty fields group nothing
    rows[2]["pair"] = ("", "")
    clusters = near_duplicate_clusters(rows)
    assert clusters[0] == [0, 3, 5]
    assert sorted(len(c) for c in clusters.values()) == [1, 1, 1, 3]


def test_a_cluster_falls_into_one_split_and_rows_without_pairs_split_as_before():
    cfg = dataclasses.replace(trial_config().task, test_fraction=0.3, validation_fraction=0.2)
    rows = _rows(60)
    for i in range(0, 60, 6):  # ten clusters of three
        rows[i + 2]["pair"] = (rows[i]["pair"][0], f"x {i}")
        rows[i + 4]["pair"] = (f"y {i}", rows[i]["pair"][1].upper())
    where = _where(tasks._stratified_indices(rows, cfg))
    assert all(where[i] == where[i + 2] == where[i + 4] for i in range(0, 60, 6))
    assert set(where.values()) == {"train", "validation", "test"}
    plain = [{k: v for k, v in row.items() if k != "pair"} for row in rows]
    from sklearn.model_selection import train_test_split

    _, test = train_test_split(list(range(60)), test_size=0.3, random_state=tasks.SPLIT_SEED,
                               stratify=[r["group"] for r in plain])
    assert tasks._stratified_indices(plain, cfg)["test"] == test  # no pairs: the split it always was


def test_no_bbc_test_article_shares_a_headline_or_first_paragraph_with_a_training_article(tmp_path):
    for task in ("bbc-topic", "bbc-headline"):
        cfg = trial_config(f"task={task}").task
        splits = tasks.raw_splits(cfg, tmp_path)
        seen = {(k, _normalised(v)) for row in splits["train"] + splits["validation"]
                for k, v in enumerate(row["pair"])}
        shared = [row for row in splits["test"] if any((k, _normalised(v)) in seen for k, v in enumerate(row["pair"]))]
        assert shared == [], f"{task}: {len(shared)} test articles share a headline or first paragraph"
        assert 400 <= len(splits["test"]) <= 440  # still about the 419 of a plain split
