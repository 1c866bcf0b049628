"""Sweeps that survive: resume by config key, Hydra callbacks that check the shared values and then consolidate and
summarise, the sweep's console line per trial, how many trials run at once, test-only faults.

The sweep itself is Hydra multirun (presets in conf/sweep/); each trial runs in its own process, started by
bench.launch (isolation.py, worker.py).
"""
