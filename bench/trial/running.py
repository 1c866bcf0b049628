"""A training trial, start to record: check -> shared caches (the caller's) -> load, apply, train, measure -> the
record with what the trial's figures imply (timed alone, start-up without the shared work, tokens per joule).
How it runs is the caller's choice (bench.launch): in this process (`in_process`) or over ranks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.config import TrialConfig
from bench.results.record import TrialRecord
from bench.tasks import curve as curves
from bench.trackers.load import alone
from bench.trial.load import device_of, setup
from bench.trial.measuring import measure
from bench.trial.phases import Phases
from bench.trial.record import recorded
from bench.trial.result import Measured
from bench.trial.train import add_mfu, check_timed_steps, train, training_memory


@dataclass
class Run:
    """One run of a trial, as a runner sees it: it adds what it measures to `found`, phase by phase."""

    cfg: TrialConfig
    phases: Phases
    found: Measured
    progress: bool
    trial_dir: Path | None


def run(cfg: TrialConfig, progress: bool = True, trial_dir: Path | None = None, runner=None,
        prepare=None) -> TrialRecord:
    """Run the trial; never raises for a trial failure: the record says ok, failed (with phase) or skipped.
    runner(Run) trains and measures (`in_process` unless given); prepare(cfg), when given, fills the caches trials
    share before anything is measured and returns its own figures (seconds_prepare)."""
    this = Run(cfg, Phases(), Measured(), progress, trial_dir)

    def body() -> None:
        # before the shared work: a config with no timed step (the method's params were checked by from_dict)
        check_timed_steps(cfg, device_of(cfg))
        if prepare is not None:
            this.found.add(prepare(cfg))
        (runner or in_process)(this)

    record = recorded({**cfg.to_dict(), "learning_rate": cfg.learning_rate}, cfg.key(), cfg.seed, body, this.phases,
                      this.found)
    this.found.add(implied(this.found.figures))
    return record


def in_process(this: Run) -> None:
    """Load, apply the method, train and measure, here."""
    cfg, phases, found = this.cfg, this.phases, this.found
    ready = setup(cfg, phases, found=found)
    with phases("train"):
        memory = training_memory(cfg, ready.device)
        curve = curves.for_trial(cfg, ready.data, ready.tokenizer, ready.model_kind, ready.device, ready.probe,
                                 found.figures.get("probe_before"),
                                 outside_memory=memory.paused)  # checkpoints scored between steps stay out of it
        trained = train(cfg, ready, this.progress, [curve] if curve else [], memory)
        if curve:
            found.add(Measured(curve.result(), {"curve": curve.points, "val_quality": curve.val_items}))
        found.add(trained.figures(ready.model))
        add_mfu(found.figures, ready.device, Path(cfg.cache_dir).expanduser())
    found.add(measure(cfg, ready, ready.model, phases, this.trial_dir, probed=curve.last_probe if curve else None))


def implied(metrics: dict) -> dict:
    """What the figures imply: speed and latency verdicts only from trials timed alone, start-up without the shared
    work, training tokens per joule."""
    figures = alone(metrics)
    if metrics.get("startup_seconds") is not None and metrics.get("seconds_prepare"):
        figures["startup_seconds"] = metrics["startup_seconds"] - metrics["seconds_prepare"]  # not this trial's
    if metrics.get("energy_joules_train") and metrics.get("train_tokens"):
        figures["train_tokens_per_joule"] = metrics["train_tokens"] / metrics["energy_joules_train"]
    return figures
