"""Memory of a rank: the trial's memory tracker, started when training begins.

Each rank loads the whole model before FSDP shards it (inside trainer.train(), when the Trainer prepares the model).
A tracker around trainer.train(), as a one-process trial has, would count the whole model in every rank's baseline
and peak; started at on_train_begin, after the Trainer prepared (sharded or wrapped) the model, it measures what
the rank holds while it trains. The breakdown of the rank's figures: bench.distributed.figures.
"""

from __future__ import annotations

from transformers import TrainerCallback


class MemoryFromTrainBegin(TrainerCallback):
    def __init__(self, memory):
        self.memory = memory  # a bench.trackers.memory.MemoryTracker

    def on_train_begin(self, args, state, control, **kwargs):
        self.memory.__enter__()

    def on_train_end(self, args, state, control, **kwargs):
        self.memory.__exit__(None, None, None)
