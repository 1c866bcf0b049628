"""The one place that starts processes. Importing this package starts nothing and imports no torch: a sweep process
imports it before it decides whether to fork its trials.

job.py          one job of peft-bench or peft-bench-serve: resume, then the trial here or in a child, its record
trial.py        a single trial: the shared work first, then in this process or over ranks
isolation.py    a sweep's trial (or a serving trial) in a child process of its own; worker.py is that child
ranks.py        a distributed trial's rank processes under torch's elastic agent; rank.py is one rank
shared.py       the caches trials share (peak FLOP/s, base probe score), filled in a child (shared_child.py)
lifetime.py     children die with their parent and with the sweep
"""
