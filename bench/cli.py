"""`peft-bench`: the Hydra entry point. Config -> typed dataclasses -> trial -> record.

  peft-bench                                   # one trial: minilm-l6, bbc-topic, lora
  peft-bench method=full model=smollm2-135m    # any group option from conf/
  peft-bench -m 'method=glob(*)' train.max_steps=5
  peft-bench sweep=quick                       # a named preset under conf/sweep/ (README.md, Sweeps)
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import re
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from bench import config
from bench.config import CONF_DIR, ConfigError, check_group_choices  # noqa: F401 (check_group_choices: for tests)
from bench.results import record as records
from bench.results.console import summary

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
config.register()


# Options that need a Hydra plugin from an extra: checked before Hydra starts, for one clear line.
PLUGINS = {
    "sweep=lora-rank-optuna": ("hydra_plugins.hydra_optuna_sweeper", "hydra-optuna-sweeper", "search"),
    "hydra/launcher=slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "cluster"),
    "hydra/launcher=submitit_local": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "cluster"),
    "hydra/launcher=ray-cluster": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher", "ray"),
    "hydra/launcher=ray": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher", "ray"),
    "hydra/sweeper=optuna": ("hydra_plugins.hydra_optuna_sweeper", "hydra-optuna-sweeper", "search"),
}


def check_plugins(argv: list[str]) -> None:
    if any(arg in ("--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help") for arg in argv):
        return  # printing a config needs no plugin
    for arg in argv:
        if arg in PLUGINS and importlib.util.find_spec(PLUGINS[arg][0]) is None:
            _, dist, extra = PLUGINS[arg]
            raise ConfigError(f"`{arg}` needs the Hydra plugin {dist}, which is not installed: "
                              f"pip install -e '.[{extra}]' (or pip install {dist})")


def run_job(raw: dict, trial_dir: Path, force: bool, isolated: bool, timeout: float | None = None):
    """Run one trial unless a finished record with the same config exists; write its record.

    isolated (multirun): the trial runs in its own process and every failure, a bad config included, becomes a
    failed record; single run: in this process, and a bad config raises ConfigError (one line, no record).
    """
    from bench import trial
    from bench.sweep import resume

    if isolated:
        from bench.sweep.isolation import prepare

        prepare()  # before anything of the trial's own (a config failure record imports torch): fork or not
    try:
        cfg = config.from_dict(raw)
    except ConfigError as error:
        if not isolated:
            raise
        return _record_config_failure(raw, error, trial_dir)
    trial_dir, finished = resume.place(trial_dir, cfg.key(), force)
    if finished is not None:
        from bench.sweep.progress import position

        print(f"peft-bench: {position(trial_dir)}already finished ({finished['status']}), not run again: {trial_dir} "
              "(force=true to run it again)", flush=True)
        return finished
    if isolated:
        from bench.sweep.isolation import run_isolated
        from bench.sweep.progress import position

        from bench.trackers.prepare import prepare as fill_shared_caches

        fill_shared_caches(cfg)  # base probe score, peak FLOP/s: in a process of their own, before the trial starts
        print(f"peft-bench: {position(trial_dir)}running {trial_dir.name}", flush=True)
        return run_isolated(cfg, trial_dir, timeout)
    result = trial.run(cfg, progress=sys.stdout.isatty() or not isolated, trial_dir=trial_dir)
    if result.status != records.OK and result.error["phase"] == "config":
        raise ConfigError(result.error["message"])  # bad input on a single run: one line, no record
    path = records.write(result, trial_dir)
    print(summary(result, path), flush=True)
    return result


def _record_config_failure(raw: dict, error: Exception, trial_dir: Path, phase: str = "config") -> dict:
    """A sweep trial that could not start: a failed record in the folder its raw key is given."""
    from bench.results import failures
    from bench.sweep import resume

    folder, _ = resume.place(trial_dir, failures.raw_key(raw), force=True)
    return failures.record_config_failure(raw, error, folder, phase)


FAILED_OBJECTIVE = 0.0  # quality metrics lie in [0, 1]: a failed trial counts as the worst (Optuna 2 rejects NaN)


def objective(result) -> float:
    """What a multirun job returns, for sweepers that search (Optuna maximises it): the trial's held-out quality."""
    record = result if isinstance(result, dict) else getattr(result, "to_dict", lambda: {})()
    quality = (record.get("metrics") or {}).get("quality") if record.get("status") == records.OK else None
    return float(quality) if isinstance(quality, (int, float)) and math.isfinite(quality) else FAILED_OBJECTIVE


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig):
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    trial_dir = Path(hydra_cfg.runtime.output_dir)
    raw = OmegaConf.to_container(cfg, resolve=True)
    options = config.pop_run_options(raw)
    force, timeout = bool(options["force"]), options["trial_timeout"]
    if not multirun:
        try:
            result = run_job(raw, trial_dir, force, isolated=False)
        except ConfigError as error:
            print(f"peft-bench: {error}", file=sys.stderr)
            sys.exit(2)
        if getattr(result, "status", records.OK) == records.FAILED:
            sys.exit(1)
        return None
    try:
        result = run_job(raw, trial_dir, force, isolated=True, timeout=timeout)
    except Exception as error:  # noqa: BLE001 - a sweep never dies for one trial: record what the parent hit, go on
        import traceback

        traceback.print_exc()
        try:
            result = _record_config_failure(raw, error, trial_dir, phase="sweep")
        except Exception:  # noqa: BLE001 - even the record could not be written (disk full?): say so, go on
            traceback.print_exc()
            return FAILED_OBJECTIVE
    return objective(result)


def main() -> None:
    """Bad input on the command line, or in composing it, ends here in one line and exit 2 (no Hydra page)."""
    from bench.sweep.worker import SWEEP_ENV, process_identity

    def run() -> None:
        check_group_choices(sys.argv[1:])
        check_plugins(sys.argv[1:])
        os.environ[SWEEP_ENV] = process_identity()  # trials end with this process, launcher processes between or not
        hydra_main()

    config.exit_on_bad_input("peft-bench", run)


if __name__ == "__main__":
    main()
