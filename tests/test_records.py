"""Records are atomic, complete and round-trip through consolidation.

pytest tests/test_records.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bench.common import files
from bench.results import consolidate, record


def make_record(method: str, status: str = "ok", seed: int = 0) -> record.TrialRecord:
    return record.TrialRecord(
        status=status,
        config={"method": {"name": method, "params": {"r": 8}}, "train": {"max_steps": 5}, "learning_rate": 5e-4},
        key=f"key-{method}-{seed}",
        identity={"method": method, "family": "reparameterization", "model": "tiny-bert", "task": "bbc-topic",
                  "seed": seed},
        metrics={"trainable_fraction": 0.01, "quality": 0.5, "latency_ms_p50_merged": None} if status == "ok" else {},
        error=None if status == "ok" else {"type": "RuntimeError", "message": "boom", "phase": "train"},
        provenance=record.provenance(seed, "cpu"),
    )


def test_record_round_trips_through_consolidation(tmp_path: Path):
    record.write(make_record("lora"), tmp_path / "a")
    record.write(make_record("full", status="failed", seed=1), tmp_path / "b")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "record.json").write_text('{"status": "ok", "identi')  # a torn file from an older writer
    csv = consolidate.consolidate(tmp_path)
    table = pd.read_csv(csv)
    assert sorted(table["method"]) == ["full", "lora"]
    lora = table.set_index("method").loc["lora"]
    assert lora["status"] == "ok" and lora["quality"] == 0.5 and lora["seed"] == 0
    assert pd.isna(lora["latency_ms_p50_merged"])  # n/a stays empty, never 0
    assert json.loads(lora["method_params"]) == {"r": 8}
    failed = table.set_index("method").loc["full"]
    assert (failed["error_type"], failed["error_phase"], failed["error_message"]) == ("RuntimeError", "train", "boom")
    assert pd.read_parquet(tmp_path / "trials.parquet").shape == table.shape


def test_record_carries_provenance_and_schema(tmp_path: Path):
    path = record.write(make_record("lora"), tmp_path)
    payload = json.loads(path.read_text())
    assert payload["schema_version"] == record.SCHEMA_VERSION
    prov = payload["provenance"]
    assert {"git_commit", "git_dirty", "packages", "device", "torch_threads", "seed"} <= set(prov)
    assert prov["packages"]["torch"]


def test_atomic_write_keeps_the_old_record_when_writing_fails(tmp_path: Path):
    path = tmp_path / "record.json"
    files.write_atomic(path, {"status": "ok", "n": 1})
    with pytest.raises(TypeError):
        files.write_atomic(path, {"status": "ok", "bad": object.__new__(_Unserialisable)})
    assert json.loads(path.read_text()) == {"status": "ok", "n": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]  # no temp file left behind


class _Unserialisable:
    def __str__(self):
        raise TypeError("cannot serialise")
