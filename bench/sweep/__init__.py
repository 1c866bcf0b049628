"""Sweeps that survive: resume by config key, Hydra callbacks that consolidate and summarise, test-only faults.

The sweep itself is Hydra multirun (presets in conf/sweep/); each trial runs in its own process (isolation.py,
worker.py).
"""
