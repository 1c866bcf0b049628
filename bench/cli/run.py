"""`peft-bench`: the Hydra entry point. Config -> typed dataclasses -> trial -> record.

  peft-bench                                   # one trial: minilm-l6, bbc-topic, lora
  peft-bench method=full model=smollm2-135m    # any group option from conf/
  peft-bench -m 'method=glob(*)' train.max_steps=5
  peft-bench sweep=quick                       # a named preset under conf/sweep/ (README.md, Sweeps)
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bench import config, methods
from bench.cli import errors
from bench.config import CONF_DIR, ConfigError
from bench.launch import job, worker
from bench.launch.job import Kind
from bench.results import record as records
from bench.sweep.concurrency import announced

MAX_OVERRIDES_IN_NAME = 120  # a folder name must stay under 255 bytes; longer override lists end in a hash
# Overrides the name leaves out: the names themselves (already in it), and paths (a data file, a model folder),
# which stay in the config and its key. So do other overrides whose value holds a `/` (a path or a Hub id).
NAMED_ELSEWHERE = ("model.name", "task.name", "model.name_or_path", "task.dataset.data_files", "task.dataset.data_dir")


def trial_name(model: str, task: str, method: str, seed, overrides: str) -> str:
    """Folder name of a trial: readable identity, plus the other overrides that shaped it (not paths).

    Long override lists are cut and end in `~` and a hash of the whole list, so names stay unique and legal;
    resume matches records by config key anyway (bench/sweep/resume.py).
    """
    name = "__".join(_safe(part) for part in (model, task, method, f"seed{seed}"))
    kept = [item for item in _split_overrides(overrides) if not _named_elsewhere(item)]
    if not kept:
        return name
    text = _safe(",".join(kept))
    if len(text) > MAX_OVERRIDES_IN_NAME:
        text = text[: MAX_OVERRIDES_IN_NAME - 9] + "~" + hashlib.sha256(overrides.encode()).hexdigest()[:8]
    return f"{name}__{text}"


def _safe(text) -> str:
    return str(text).replace("/", "_")  # a Hub id must not nest folders


def _split_overrides(overrides: str) -> list[str]:
    """`a=1,+b=[x,y]` -> ['a=1', 'b=[x,y]']: `+key=`/`++key=` name the same value as `key=`."""
    items = re.split(r",(?=\+{0,2}[\w.@/-]+=)", overrides) if overrides else []
    return [item.lstrip("+") for item in items]


def _named_elsewhere(item: str) -> bool:
    key, _, value = item.partition("=")
    return key.startswith(NAMED_ELSEWHERE) or "/" in value


OmegaConf.register_new_resolver("trial_name", trial_name, replace=True)
config.register(methods.registry())


TRAINING = Kind("peft-bench", config.from_dict, worker.run_trial)  # a training trial, as bench.launch.job runs it


def run_job(raw: dict, trial_dir: Path, force: bool, isolated: bool, timeout: float | None = None):
    """Run one trial unless a finished record with the same config exists; write its record.

    isolated (multirun): the trial runs in its own process and every failure, a bad config included, becomes a
    failed record; single run: in this process, and a bad config raises ConfigError (one line, no record).
    """
    return job.run_job(TRAINING, raw, trial_dir, force, isolated, timeout)


FAILED_OBJECTIVE = 0.0  # quality metrics lie in [0, 1]: a failed trial counts as the worst (Optuna 2 rejects NaN)


def objective(result) -> float:
    """What a multirun job returns, for sweepers that search (Optuna maximises it): the trial's VALIDATION quality
    (`val_quality`, scored when train.eval_every is set), never the test split's, which is scored once and never
    chosen on. A trial without a validation score counts as failed."""
    record = result if isinstance(result, dict) else getattr(result, "to_dict", lambda: {})()
    quality = (record.get("metrics") or {}).get("val_quality") if record.get("status") == records.OK else None
    return float(quality) if isinstance(quality, (int, float)) and math.isfinite(quality) else FAILED_OBJECTIVE


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig):
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    trial_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        raw = config.note_rate_by_hand(_resolved(cfg), hydra_cfg.overrides.task)
    except ConfigError as error:
        if not multirun:
            errors.stop(error, trial_dir=trial_dir)
        return objective(job.record_config_failure(OmegaConf.to_container(cfg), error, trial_dir))  # goes on
    options = config.pop_run_options(raw)
    force, timeout = bool(options["force"]), options["trial_timeout"]
    if not multirun:
        try:
            result = run_job(raw, trial_dir, force, isolated=False)
        except ConfigError as error:
            errors.stop(error, trial_dir=trial_dir)
        if getattr(result, "status", records.OK) == records.FAILED:
            sys.exit(1)
        return None
    try:
        with announced(OmegaConf.to_container(hydra_cfg.launcher)):  # each trial records how many ran beside it
            result = run_job(raw, trial_dir, force, isolated=True, timeout=timeout)
    except Exception as error:  # noqa: BLE001 - a sweep never dies for one trial: record what the parent hit, go on
        traceback.print_exc()
        try:
            result = job.record_config_failure(raw, error, trial_dir, phase="sweep")
        except Exception:  # noqa: BLE001 - even the record could not be written (disk full?): say so, go on
            traceback.print_exc()
            return FAILED_OBJECTIVE
    return objective(result)


def _resolved(cfg: DictConfig) -> dict:
    """The job's config as plain values; an interpolation that does not resolve is bad input (ConfigError), raised
    here, in the job, where Hydra would otherwise print its own line about the job before ours."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        raise ConfigError(errors.hydra_error_line(error, sys.argv[1:])) from error


def main() -> None:
    """Bad input on the command line, or in composing it, ends here in one line and exit 2 (no Hydra page)."""
    errors.run_app("peft-bench", hydra_main)


if __name__ == "__main__":
    main()
