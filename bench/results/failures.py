"""Failed records for trials that could not write their own: a trial process that died or ran past its timeout
(written by the sweep process that started it), and a sweep trial whose config did not even validate."""

from __future__ import annotations

from pathlib import Path

from bench.config import config_key
from bench.results import console
from bench.results import record as records


def raw_key(raw: dict) -> str:
    """Key of a config that did not validate: a hash of its raw values (such a record is always run again)."""
    return "raw-" + config_key(raw)[:12]


def record_failure(config: dict, key: str, identity: dict, error: dict, trial_dir: Path, seed, metrics=None) -> dict:
    """Write a failed record into trial_dir and say so in one line; returns the record as a dict."""
    failed = records.TrialRecord(status=records.FAILED, config=config, key=key, identity=identity,
                                 metrics=metrics or {}, error=error,
                                 provenance=records.provenance(seed if isinstance(seed, int) else 0, "unknown"))
    records.write(failed, trial_dir)
    print(console.failure_line(identity, error), flush=True)
    return failed.to_dict()


def record_config_failure(raw: dict, error: Exception, trial_dir: Path, phase: str = "config") -> dict:
    """A sweep trial that could not start (its config did not validate): a failed record, so the sweep goes on."""
    config = {k: v for k, v in raw.items() if k != "hydra"}
    return record_failure(config, raw_key(raw), records.identity(config),
                          records.error_info(error, phase, with_traceback=False), trial_dir, raw.get("seed"))
