"""What a trial prints while it runs: one progress bar over its training steps with the loss in its postfix, and
library warnings only with `verbose=true` (the sweep's line per trial: bench.sweep.progress).

  .venv/bin/python -m pytest -q tests/test_progress.py

Transformers' own Trainer output (a bar plus a raw `{'loss': ...}` dict per logging step, or the dicts alone
when its bar is off) is replaced here, so a default trial fits one screen: bar, summary, record path.
"""

from __future__ import annotations

import sys
import warnings

import datasets
import transformers
from tqdm.auto import tqdm
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

NON_TTY_REFRESH_SECONDS = 10.0  # a bar written to a log file redraws rarely, so the file stays small


def quiet_libraries(verbose: bool) -> None:
    """Without `verbose`, library warnings (deprecations, FutureWarnings) and info logs stay off the console;
    the harness's own warnings (module `bench.`) still show."""
    transformers.utils.logging.disable_progress_bar()  # the loaders' bars, even verbose: the trial's bar is TrialBar
    datasets.disable_progress_bars()
    if verbose:
        warnings.simplefilter("default")
        transformers.logging.set_verbosity_warning()
        datasets.logging.set_verbosity_warning()
        return
    warnings.simplefilter("ignore")
    warnings.filterwarnings("default", module=r"bench\.")
    transformers.logging.set_verbosity_error()
    datasets.logging.set_verbosity_error()


class TrialBar(TrainerCallback):
    """One bar over the training steps; each logged loss goes into its postfix (and, verbose, onto a line)."""

    def __init__(self, label: str, verbose: bool = False):
        self.label, self.verbose, self.bar = label, verbose, None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.bar = tqdm(total=state.max_steps, desc=self.label, unit="step", dynamic_ncols=True, file=sys.stderr,
                            mininterval=0.1 if sys.stderr.isatty() else NON_TTY_REFRESH_SECONDS)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is None or not logs or "loss" not in logs:
            return
        self.bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)
        if self.verbose:
            values = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in logs.items())
            self.bar.write(f"step {state.global_step}: {values}", file=sys.stderr)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def attach(trainer, label: str, show_bar: bool, verbose: bool = False) -> None:
    """Replace the Trainer's console callbacks (its bar and its printed log dicts) by TrialBar, or by nothing."""
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if show_bar:
        trainer.add_callback(TrialBar(label, verbose))
