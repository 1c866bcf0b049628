"""Each trial of a sweep in its own process, so memory peaks are the trial's own and a crash ends only it.

The parent writes the trial's config and the name of the function that runs it (`runner=`: a training trial by
default, a serving trial's for peft-bench-serve), starts the worker (bench.launch.worker) on it, and, if the child died
without a record (killed, segfault, out of host memory, timed out), records the trial as failed with the cause, the
last lines the child wrote to stderr, and the peak memory (RSS) the child had reached.
Config errors found in the parent are recorded the same way (phase `config`): nothing a trial does ends the sweep.

On Linux the sweep process imports torch, transformers, peft and datasets once and forks each trial from itself:
the child starts with them loaded instead of spending ~4 s of every trial importing them again (a fixed cost that
would otherwise be a large share of a short trial), and is still a process of its own. Elsewhere, or where the
parent already holds torch state a forked child could not use, the child is a fresh `python -m bench.launch.worker DIR`.
"""

from __future__ import annotations

import importlib
import os
import re
import signal
import sys
import threading
import traceback
import warnings
from pathlib import Path

from bench.common.files import write_atomic
from bench.config import TrialConfig
from bench.results import record as records
from bench.results.failures import record_failure
from bench.launch import worker
from bench.launch.lifetime import PARENT_ENV

STDERR_TAIL = 4000  # characters of the child's stderr kept for the failure record
NO_FORK_ENV = "PEFT_BENCH_NO_FORK"  # set: every trial starts a fresh interpreter (for debugging the worker)
PRELOAD = ("torch", "transformers", "transformers.trainer", "peft", "datasets", "evaluate")
_fork_ok: bool | None = None  # decided at this process's first trial


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

    def __init__(self, fd: int):
        super().__init__(daemon=True)
        self.fd, self.tail = fd, b""

    def run(self):
        while chunk := os.read(self.fd, 65536):
            try:
                sys.stderr.buffer.write(chunk)
                sys.stderr.flush()
            except (AttributeError, OSError, ValueError):
                pass  # a launcher may give us a stderr without a buffer; the tail is what matters
            self.tail = (self.tail + chunk)[-STDERR_TAIL:]
        os.close(self.fd)


ERROR_LINE = re.compile(r"Error|Exception|Fatal|Segmentation|Abort|Killed|Traceback")


def _last_error_line(tail: bytes) -> str:
    """The last line of the child's stderr that reads like an error (warnings and progress bars are not)."""
    lines = tail.decode(errors="replace").replace("\r", "\n").splitlines()
    errors = [line.strip() for line in lines if ERROR_LINE.search(line) and "Warning" not in line]
    return errors[-1] if errors else ""


def run_isolated(cfg, trial_dir: Path, timeout: float | None = None, runner=worker.run_trial,
                 metrics: dict | None = None):
    """Run the trial in a child process; its record, or a failed one the parent writes when the child left none.

    cfg: a TrialConfig, or any config with `to_dict()` and `key()` (a serving trial's). runner: the module-level
    function the child runs on the trial folder (it reads worker.CONFIG_NAME there and writes the record).
    metrics: figures a failed record written here starts with (what tells the report a serving record from
    a training one)."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    record_path = trial_dir / records.RECORD_NAME
    record_path.unlink(missing_ok=True)  # only unfinished records (or force=true) reach here: they are redone
    write_atomic(trial_dir / worker.CONFIG_NAME, cfg.to_dict())
    (trial_dir / worker.RUNNER_NAME).write_text(worker.runner_name(runner) + "\n")
    pid, stderr_fd = _start_worker(trial_dir)
    tee = _Tee(stderr_fd)
    tee.start()
    timed_out = threading.Event()
    timer = threading.Timer(timeout, lambda: (timed_out.set(), _kill(pid))) if timeout else None
    try:
        if timer:
            timer.start()
        # Wait for the end without reaping (WNOWAIT): until the timer is stopped the pid stays this child's, so a
        # late timer can never kill another process that reused it.
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    except BaseException:  # Ctrl-C or a scheduler stopping the sweep: the trial goes with it, unrecorded
        _kill(pid)
        os.waitpid(pid, 0)
        raise
    finally:
        if timer:
            timer.cancel()
            timer.join()
    # wait4, not wait: its rusage is this child's own, so a killed trial still tells how much memory it reached.
    _, status, usage = os.wait4(pid, 0)
    returncode = os.waitstatus_to_exitcode(status)
    tee.join(timeout=5)
    written = records.read(record_path)
    if written is not None and written.get("key") == cfg.key():
        return written
    cause = _cause(returncode, timeout, timed_out.is_set())
    return _record_death(cfg, trial_dir, cause, timed_out.is_set(), tee.tail, usage.ru_maxrss, metrics)


def _record_death(cfg, trial_dir: Path, cause: str, timed_out: bool, tail: bytes, maxrss_kib: int,
                  metrics: dict | None) -> dict:
    """The failed record of a child that left none: the cause, its stderr's tail, the memory it had reached."""
    figures = dict(metrics or {})
    if maxrss_kib:
        figures.update(peak_mem_bytes=maxrss_kib * 1024, mem_source="process_rss (at death)")
    error = {"type": "TrialTimeout" if timed_out else "ProcessDied", "message": cause, "phase": "process",
             "stderr_tail": tail.decode(errors="replace")}
    if last := _last_error_line(tail):
        error["message"] += f"; stderr: {last[:300]}"
    values = cfg.to_dict()
    return record_failure(_record_config(cfg), cfg.key(), records.identity(values), error, trial_dir,
                          values.get("seed"), figures)


def _record_config(cfg) -> dict:
    """The config as the trial's own record would hold it: a training trial's adds the learning rate it resolved."""
    values = cfg.to_dict()
    return values | {"learning_rate": cfg.learning_rate} if isinstance(cfg, TrialConfig) else values


def preload_for_fork() -> None:
    """Called by the sweep before its first trial's config is even read: decide whether trials are forked from this
    process, and if so import PRELOAD now. Forking is safe on Linux when nothing has imported torch before us: a
    process that has run torch ops may hold OpenMP threads or a CUDA context that a forked child cannot use. The
    sweep process itself only imports; no torch op runs in it."""
    global _fork_ok
    if _fork_ok is None:
        _fork_ok = sys.platform.startswith("linux") and "torch" not in sys.modules and not os.environ.get(NO_FORK_ENV)
        if _fork_ok:
            for name in PRELOAD:
                importlib.import_module(name)


def _start_worker(trial_dir: Path) -> tuple[int, int]:
    """(pid, read end of its stderr): forked when preload_for_fork() allowed it and no CUDA context exists here, else
    a fresh interpreter (also when fork itself fails, e.g. for memory)."""
    preload_for_fork()
    torch = sys.modules.get("torch")
    if _fork_ok and not (torch is not None and torch.cuda.is_initialized()):
        try:
            return _fork_worker(trial_dir)
        except OSError:
            pass
    return _spawn_worker(trial_dir)


def _spawn_worker(trial_dir: Path) -> tuple[int, int]:
    """(pid, read end of its stderr) of a fresh `python -m bench.launch.worker DIR`."""
    read_fd, write_fd = os.pipe()
    env = {**os.environ, PARENT_ENV: str(os.getpid())}
    actions = [(os.POSIX_SPAWN_DUP2, write_fd, 2), (os.POSIX_SPAWN_CLOSE, read_fd)]
    pid = os.posix_spawn(sys.executable, [sys.executable, "-m", worker.__name__, str(trial_dir)], env,
                         file_actions=actions)
    os.close(write_fd)
    return pid, read_fd


def _fork_worker(trial_dir: Path) -> tuple[int, int]:
    """(pid, read end of its stderr) of a fork of this process running the worker on trial_dir."""
    read_fd, write_fd = os.pipe()
    parent_pid = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    # SIGINT blocked across the fork: a Ctrl-C must not land in the child while it still runs the launcher's code.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        with warnings.catch_warnings():  # Python >= 3.12 warns on fork with threads alive: ours are idle or joined
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except OSError:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(read_fd)
        os.close(write_fd)
        raise
    if pid:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(write_fd)
        return pid, read_fd
    _be_the_worker(trial_dir, read_fd, write_fd, blocked, parent_pid)


def _be_the_worker(trial_dir: Path, read_fd: int, write_fd: int, blocked, parent_pid: int):
    """In the forked child: stderr into the pipe, the worker on trial_dir, then _exit (never returns)."""
    code = 1
    try:
        _default_signal_handlers()
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(read_fd)
        os.dup2(write_fd, 2)
        os.close(write_fd)
        # A launcher or test runner may have replaced sys.stdout/stderr with objects of its own: write to the fds.
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        os.environ[PARENT_ENV] = str(parent_pid)  # not getppid(): the parent may already be gone
        import multiprocessing.util

        multiprocessing.util._finalizer_registry.clear()  # the parent's finalizers are the parent's to run
        worker.main(str(trial_dir))
        code = 0
    except SystemExit as error:
        code = error.code if isinstance(error.code, int) else 1
    except BaseException:  # noqa: BLE001 - the forked child reports anything on its stderr, then always _exits
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            # Under joblib's loky workers a semaphore the trial made (tqdm's lock) is registered with the resource
            # tracker, and os._exit skips the finalizer that unregisters it: `make demo` ended with "6 leaked
            # semaphore objects", one per trial. multiprocessing's own exit runs these two calls (and its child
            # start clears the inherited registry, as above).
            import multiprocessing.util

            multiprocessing.util._run_finalizers(0)
            multiprocessing.util._run_finalizers()
        finally:
            os._exit(code)  # never back into the parent's code (its launcher, its atexit handlers)


def _default_signal_handlers() -> None:
    """The child drops the Python handlers it inherited (submitit's SIGTERM logger and SIGUSR2 requeue, Hydra's,
    ours): a trial dies of a signal like a fresh process would, and Ctrl-C ends it."""
    for number in signal.valid_signals():
        try:
            if callable(signal.getsignal(number)):
                signal.signal(number, signal.SIG_DFL)
        except (OSError, ValueError, TypeError):
            pass


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
