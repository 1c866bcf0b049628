"""Trackers behind one protocol: a registered tracker's callbacks listen to training and its figures reach the
record, with no trial code naming it (the gradient norm at the last logged step is one such tracker).

pytest tests/test_tracker_protocol.py
"""

from __future__ import annotations

import torch
from transformers import TrainerCallback

from bench import trial
from bench.trackers import protocol
from bench.trackers.grad_norm import GradNorm
from tests.conftest import trial_config


class _Steps(TrainerCallback):
    def __init__(self):
        self.steps = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1


class StepCounter(protocol.Tracker):
    """A tracker the trial has never heard of."""

    def __init__(self, cfg, device):
        super().__init__(cfg, device)
        self.listener = _Steps()

    def callbacks(self) -> list:
        return [self.listener]

    def figures(self) -> dict:
        return {"steps_seen_by_a_new_tracker": self.listener.steps}


def test_every_tracker_module_registers_itself():
    assert GradNorm in protocol.registered()


def test_a_registered_tracker_listens_to_training_and_its_figures_reach_the_trial(monkeypatch):
    monkeypatch.setattr(protocol, "_REGISTRY", [*protocol.registered(), StepCounter])
    cfg = trial_config("model=tiny-bert", "method=lora", "train.threads=1")
    ready = trial.setup(cfg, with_probe=False)
    figures = trial.train(cfg, ready, progress=False).figures(ready.model)
    assert figures["steps_seen_by_a_new_tracker"] == cfg.train.max_steps
    assert figures["final_grad_norm"] > 0 and torch.isfinite(torch.tensor(figures["final_grad_norm"]))


def test_no_gradient_norm_is_na_not_zero():
    tracker = GradNorm(trial_config(), torch.device("cpu"))
    assert tracker.figures() == {"final_grad_norm": None}
    tracker.listener.on_log(None, None, None, logs={"loss": 1.0, "grad_norm": 2.5})
    assert tracker.figures() == {"final_grad_norm": 2.5}
