"""Each trial of a sweep in its own process, so memory peaks are the trial's own and a crash ends only it.

The parent writes the trial's config, starts `python -m bench.worker DIR`, and, if the child died without a
record (killed, segfault, out of host memory, timed out), records the trial as failed with the cause, the last
lines the child wrote to stderr, and the peak memory (RSS) the child had reached.
Config errors found in the parent are recorded the same way (phase `config`): nothing a trial does ends the sweep.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from bench.config import TrialConfig
from bench.results import record as records

CONFIG_NAME = "trial_config.json"
PARENT_ENV = "PEFT_BENCH_PARENT_PID"  # the worker dies with the process that started it (bench.worker)
STDERR_TAIL = 4000  # characters of the child's stderr kept for the failure record


def _cause(returncode: int, timeout: float | None, timed_out: bool) -> str:
    if timed_out:
        return f"trial process ran past trial_timeout ({timeout:g} s) and was killed"
    if returncode < 0:
        name = signal.Signals(-returncode).name
        hint = " (killed: out of host memory or stopped by a user or scheduler)" if name == "SIGKILL" else ""
        return f"trial process died from {name}{hint}"
    return f"trial process exited with code {returncode} and left no record"


class _Tee(threading.Thread):
    """Copies the child's stderr to ours as it comes (progress bars included) and keeps its tail."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.tail = stream, b""

    def run(self):
        while chunk := os.read(self.stream.fileno(), 65536):
            try:
                sys.stderr.buffer.write(chunk)
                sys.stderr.flush()
            except (AttributeError, OSError, ValueError):
                pass  # a launcher may give us a stderr without a buffer; the tail is what matters
            self.tail = (self.tail + chunk)[-STDERR_TAIL:]


ERROR_LINE = re.compile(r"Error|Exception|Fatal|Segmentation|Abort|Killed|Traceback")


def _last_error_line(tail: bytes) -> str:
    """The last line of the child's stderr that reads like an error (warnings and progress bars are not)."""
    lines = tail.decode(errors="replace").replace("\r", "\n").splitlines()
    errors = [line.strip() for line in lines if ERROR_LINE.search(line) and "Warning" not in line]
    return errors[-1] if errors else ""


def run_isolated(cfg: TrialConfig, trial_dir: Path, timeout: float | None = None):
    """Run the trial in a child process; its record, or a failed one the parent writes when the child left none."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    record_path = trial_dir / records.RECORD_NAME
    record_path.unlink(missing_ok=True)  # only unfinished records (or force=true) reach here: they are redone
    records.write_atomic(trial_dir / CONFIG_NAME, cfg.to_dict())
    env = {**os.environ, PARENT_ENV: str(os.getpid())}
    child = subprocess.Popen([sys.executable, "-m", "bench.worker", str(trial_dir)], stderr=subprocess.PIPE, env=env)
    tee = _Tee(child.stderr)
    tee.start()
    timed_out = threading.Event()
    timer = threading.Timer(timeout, lambda: (timed_out.set(), child.kill())) if timeout else None
    try:
        if timer:
            timer.start()
        # wait4, not wait: its rusage is this child's own, so a killed trial still tells how much memory it reached.
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    except BaseException:  # Ctrl-C or a scheduler stopping the sweep: the trial goes with it, unrecorded
        child.kill()
        child.wait()
        raise
    finally:
        if timer:
            timer.cancel()
    tee.join(timeout=5)
    written = records.read(record_path)
    if written is not None and written.get("key") == cfg.key():
        return written
    metrics = {"peak_mem_bytes": usage.ru_maxrss * 1024, "mem_source": "process_rss (at death)"} if usage.ru_maxrss else {}
    error = {"type": "TrialTimeout" if timed_out.is_set() else "ProcessDied",
             "message": _cause(child.returncode, timeout, timed_out.is_set()), "phase": "process",
             "stderr_tail": tee.tail.decode(errors="replace")}
    if last := _last_error_line(tee.tail):
        error["message"] += f"; stderr: {last[:300]}"
    return record_failure(cfg.to_dict() | {"learning_rate": cfg.learning_rate}, cfg.key(), _identity(cfg), error,
                          trial_dir, cfg.seed, metrics)


def _identity(cfg: TrialConfig) -> dict:
    from bench.trial import identity

    return identity(cfg)


def raw_key(raw: dict) -> str:
    """Key of a config that did not validate: a hash of the raw values (such a record is always run again)."""
    identity = {k: v for k, v in raw.items() if k not in ("hydra", "sweep_name", "cache_dir")}
    return "raw-" + hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]


def raw_identity(raw: dict) -> dict:
    """method / family / model / task / seed read from a raw config, for a trial whose config did not validate."""
    from bench import methods
    from bench.config import ConfigError

    name = lambda section: (raw.get(section) or {}).get("name") if isinstance(raw.get(section), dict) else None
    try:
        family = methods.get(name("method")).family
    except (ConfigError, TypeError):
        family = None
    return {"method": name("method"), "family": family, "model": name("model"), "task": name("task"),
            "seed": raw.get("seed")}


def record_config_failure(raw: dict, error: Exception, trial_dir: Path, phase: str = "config"):
    """A multirun trial the parent could not even start (bad config): a failed record, and the sweep goes on."""
    from bench.sweep import resume

    key = raw_key(raw)
    folder, _ = resume.place(trial_dir, key, force=True)
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    config = {k: v for k, v in raw.items() if k != "hydra"}
    return record_failure(config, key, raw_identity(raw), {"type": type(error).__name__, "message": message,
                                                           "phase": phase}, folder, raw.get("seed"))


def record_failure(config: dict, key: str, identity: dict, error: dict, trial_dir: Path, seed, metrics=None) -> dict:
    failed = records.TrialRecord(status="failed", config=config, key=key, identity=identity, metrics=metrics or {},
                                 error=error, provenance=records.provenance(seed if isinstance(seed, int) else 0, "unknown"))
    records.write(failed, trial_dir)
    print(f"peft-bench: {identity['method']} on {identity['model']}/{identity['task']}, seed {identity['seed']}: "
          f"FAILED [{error['phase']}] {error['type']}: {error['message']}", flush=True)
    return failed.to_dict()
