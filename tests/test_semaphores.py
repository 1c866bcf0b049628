"""A trial forked from a loky worker releases what it registered with multiprocessing's resource tracker:
pytest tests/test_semaphores.py

`make demo` ended with "resource_tracker: There appear to be 6 leaked semaphore objects", one per trial of the
quick sweep: joblib's loky workers run with the "loky" start method, so a semaphore a trial creates (tqdm's write
lock, for one) is registered with the tracker; the forked trial then leaves by os._exit, which skips the finalizer
that unregisters it, and the tracker reports it when the last worker exits, during the report step.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import multiprocessing, os, sys
    multiprocessing.set_start_method("spawn")  # as in a loky worker: semaphores are registered, not unlinked at once
    from multiprocessing import resource_tracker
    resource_tracker.ensure_running()
    from bench.launch import isolation
    parent_lock = multiprocessing.Lock()  # the parent's own: its child must neither release nor unlink it
    kept = []  # held to the end, as tqdm holds its lock in a module global
    isolation.worker.main = lambda trial_dir: kept.append(multiprocessing.RLock())
    isolation.preload_for_fork = lambda: None
    for _ in range(2):
        pid, fd = isolation._fork_worker(sys.argv[1])
        os.waitpid(pid, 0)
        os.close(fd)
""")


def test_a_forked_trial_leaves_no_leaked_semaphore(tmp_path):
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "leaked semaphore" not in done.stderr and "Traceback" not in done.stderr
