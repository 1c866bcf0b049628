"""One trial: load -> apply method -> train -> evaluate -> latency, storage -> forgetting probe -> record.

load.py       config -> device and precision -> model and data resident -> the probe and the base's cached score
              -> the method applied
train.py      the Trainer, wrapped by the memory tracker, listened to by the throughput tracker and every registered
              tracker (bench.trackers.protocol); ranks.py: what a rank of a distributed trial adds
measuring.py  on the trained model: quality, checkpoint, merge and its check, latency, forgetting
record.py     the record around a trial, training or serving: status, error and phase, phases, provenance
running.py    the trial start to record; how it runs (in this process or over ranks) and the shared work before it
              are the caller's: bench.launch
result.py     Measured: what each step returns, figures for the record and per-item scores
progress.py   the trial's progress bar and quiet libraries

Phases are timed and the one in progress kept, so a failure records where it happened.
"""

from bench.trial.load import Base, Setup, autocast, compute_dtype, device_of, load_base, make_probe, precision, setup
from bench.trial.measuring import measure
from bench.trial.phases import Phases
from bench.trial.result import Measured
from bench.trial.running import Run, in_process, run
from bench.trial.train import (
    Trained,
    add_mfu,
    check_shardable,
    check_timed_steps,
    train,
    training_args,
    training_memory,
    untimed_steps,
)

__all__ = [
    "Base", "Measured", "Phases", "Run", "Setup", "Trained", "add_mfu", "autocast", "check_shardable",
    "check_timed_steps", "compute_dtype", "device_of", "in_process", "load_base", "make_probe", "measure", "precision",
    "run", "setup", "train", "training_args", "training_memory", "untimed_steps",
]
