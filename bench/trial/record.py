"""The record around a trial, training or serving alike: status ok, failed (with the phase it failed in) or
skipped, the config and its key, the figures measured up to the end or the failure, each phase's seconds, and
provenance. Never raises for a trial failure: a sweep goes on."""

from __future__ import annotations

import torch

from bench.config import ConfigError, Unsupported
from bench.results.record import FAILED, OK, SKIPPED, TrialRecord, error_info, identity, provenance
from bench.trial.phases import Phases
from bench.trial.result import Measured


def recorded(config: dict, key: str, seed: int, body, phases: Phases, found: Measured | None = None,
             traceback_when_skipped: bool = True) -> TrialRecord:
    """Run `body()`, which adds what it measures to `found` as it goes, and make the record of it."""
    found = found if found is not None else Measured()
    record = TrialRecord(status=OK, config=config, key=key, identity=identity(config), metrics=found.figures,
                         items=found.items)
    try:
        body()
    except Unsupported as error:
        record.status, record.error = SKIPPED, error_info(error, "config", with_traceback=traceback_when_skipped)
    except ConfigError as error:
        record.status, record.error = FAILED, error_info(error, "config")
    except Exception as error:  # noqa: BLE001 - any failure ends this trial only; the sweep goes on
        # a distributed trial's error is its failing rank's (type, message, phase), not the launcher's
        record.status, record.error = FAILED, getattr(error, "record_error", None) or error_info(error, phases.current)
        found.add(_memory_at_oom(error))
    # a distributed trial's rank 0 already timed its phases: the launcher adds only its own (seconds_group)
    found.add({key: value for key, value in phases.metrics().items() if key not in found.figures})
    record.provenance = provenance(seed, found.figures.get("device", "cpu"))
    return record


def _memory_at_oom(error: BaseException) -> dict:
    if isinstance(error, torch.OutOfMemoryError) and torch.cuda.is_available():
        return {"peak_mem_bytes": torch.cuda.max_memory_allocated(), "mem_source": "cuda_allocator (at out-of-memory)"}
    return {}
