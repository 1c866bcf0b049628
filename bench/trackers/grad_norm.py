"""The gradient norm at the last logged training step (`final_grad_norm`), before clipping, as the Trainer logs it
at every logging step (with train.max_grad_norm set). Beside the final loss it says whether training had settled
by its end: a norm still large, or growing, flags a rate too high before the loss shows it. n/a where the Trainer
logged none (train.max_grad_norm=0, or no logging step).

A tracker of bench.trackers.protocol: the trial makes it for every training run without naming it.
"""

from __future__ import annotations

from transformers import TrainerCallback

from bench.trackers.protocol import Tracker, register


class _LastGradNorm(TrainerCallback):
    def __init__(self):
        self.value: float | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and logs.get("grad_norm") is not None:
            self.value = float(logs["grad_norm"])


@register
class GradNorm(Tracker):
    def __init__(self, cfg, device):
        super().__init__(cfg, device)
        self.listener = _LastGradNorm()

    def callbacks(self) -> list:
        return [self.listener]

    def figures(self) -> dict:
        return {"final_grad_norm": self.listener.value}
