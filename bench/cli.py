"""`peft-bench`: the Hydra entry point. Config -> typed dataclasses -> trial -> record.

  peft-bench                                   # one trial: minilm-l6, bbc-topic, lora
  peft-bench method=full model=smollm2-135m    # any group option from conf/
  peft-bench -m 'method=glob(*)' train.max_steps=5
  peft-bench sweep=quick                       # a named preset under conf/sweep/ (README.md, Sweeps)
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import math
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from bench import closest, config
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


PRINT_ONLY = ("--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help")  # flags that run no trial


def check_plugins(argv: list[str]) -> None:
    if any(arg in PRINT_ONLY for arg in argv):
        return  # printing a config needs no plugin
    for arg in argv:
        if arg in PLUGINS and importlib.util.find_spec(PLUGINS[arg][0]) is None:
            _, dist, extra = PLUGINS[arg]
            raise ConfigError(f"`{arg}` needs the Hydra plugin {dist}, which is not installed: "
                              f"pip install -e '.[{extra}]' (or pip install {dist})")


def check_results_dir(argv: list[str], default: str = "results") -> None:
    """`results_dir` (given on the command line, else the default) can be created and written to: checked before
    Hydra starts, which would otherwise fail making its run folder in a page of traceback."""
    if any(arg in PRINT_ONLY for arg in argv):
        return
    given = _given("results_dir", argv)
    if isinstance(given, str) and ("${" in given or "," in given):
        return  # an interpolation or a sweep over folders: each is checked as Hydra makes it
    folder = Path(str(default if given is None else given)).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(f"`results_dir` ({str(folder)!r}) cannot be created or written to: {reason}") from error


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
        raw = _resolved(cfg)
    except ConfigError as error:
        if not multirun:
            stop(error)
        return objective(_record_config_failure(OmegaConf.to_container(cfg), error, trial_dir))  # the sweep goes on
    options = config.pop_run_options(raw)
    force, timeout = bool(options["force"]), options["trial_timeout"]
    if not multirun:
        try:
            result = run_job(raw, trial_dir, force, isolated=False)
        except ConfigError as error:
            stop(error)
        if getattr(result, "status", records.OK) == records.FAILED:
            sys.exit(1)
        return None
    from bench.sweep.concurrency import announced

    try:
        with announced(OmegaConf.to_container(hydra_cfg.launcher)):  # each trial records how many ran beside it
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


def stop(error: ConfigError, program: str = "peft-bench") -> NoReturn:
    """Bad input on a single run, or shared by every trial of a sweep: one line, exit 2, no record."""
    print(f"{program}: {error}", file=sys.stderr)
    sys.exit(2)


def _resolved(cfg: DictConfig) -> dict:
    """The job's config as plain values; an interpolation that does not resolve is bad input (ConfigError), raised
    here, in the job, where Hydra would otherwise print its own line about the job before ours."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        raise ConfigError(explain(error, sys.argv[1:])) from error


def main() -> None:
    """Bad input on the command line, or in composing it, ends here in one line and exit 2 (no Hydra page)."""
    run_app("peft-bench", hydra_main)


def run_app(program: str, app) -> None:
    """Run a Hydra app (`app`: its @hydra.main function) as `program`, so that bad input on the command line or in
    composing conf/ ends in one line naming the key and value, exit 2; peft-bench-serve runs through here too."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException
    from yaml import YAMLError

    from bench.sweep.lifetime import SWEEP_ENV, process_identity

    traces = bool(os.environ.get("HYDRA_FULL_ERROR"))  # the user's own: Hydra's whole page, as Hydra gives it

    def run() -> None:
        check_group_choices(sys.argv[1:])
        check_plugins(sys.argv[1:])
        check_results_dir(sys.argv[1:])
        os.environ[SWEEP_ENV] = process_identity()  # trials end with this process, launcher processes between or not
        try:
            app()
        except (HydraException, OmegaConfBaseException, YAMLError) as error:
            if traces:
                raise
            raise ConfigError(explain(error, sys.argv[1:])) from error

    config.exit_on_bad_input(program, run)


def explain(error: BaseException, argv: list[str]) -> str:
    """One line naming the key (or file) and the value, for what config.explain would word in Hydra's terms: a
    group or option that does not exist, a key that is not a parameter of the method, a value where a mapping
    belongs, a YAML file that does not parse; each with the config file it came from. Anything else: config.explain."""
    for explainer in (_not_yaml, _no_such_option, _no_such_group, _not_a_parameter, _not_a_mapping):
        line = explainer(error, argv)
        if line:
            return line
    return _in_file(config.explain(error), _where(error))


def _in_file(line: str, where: str) -> str:
    """"`k` ('v') must be ..." -> "`k` ('v', in sweep/mine) must be ...": the file a bad value came from."""
    match = re.match(r"`([^`]+)`(?: \((.*?)\))?(.*)", line)
    if not where or not match:
        return line
    key, value, rest = match.groups()
    return f"`{key}` ({', '.join(([value] if value else []) + [f'in {where}'])}){rest}"


def _chain(error: BaseException):
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def _where(error: BaseException) -> str:
    """The config file Hydra was composing ('sweep/quick'), or '' for the primary config and the command line."""
    match = re.match(r"In '([^']+)':", str(error))
    return match.group(1) if match and match.group(1) not in ("config", "hydra/config") else ""


def _about(value=None, where: str = "") -> str:
    """' (4, in sweep/mine)': the value and the file, whichever are known."""
    parts = ([repr(value)] if value is not None else []) + ([f"in {where}"] if where else [])
    return f" ({', '.join(parts)})" if parts else ""


def _given(key: str, argv: list[str]):
    """The value `key=VALUE` (or `+key=`) has on the command line, if it is there (the last one: Hydra's)."""
    given = [arg.split("=", 1)[1] for arg in argv if re.fullmatch(rf"\+{{0,2}}{re.escape(key)}=.*", arg)]
    return _typed(given[-1]) if given else None


def _typed(text: str):
    """'0' -> 0, 'abc' -> 'abc': a value written in a command line or a message, as YAML reads it."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _not_yaml(error, argv) -> str:
    from yaml import YAMLError

    bad = next((e for e in _chain(error) if isinstance(e, YAMLError)), None)
    mark = getattr(bad, "problem_mark", None)
    if bad is None or mark is None:
        return ""
    return f"{mark.name} is not valid YAML: {bad.problem} (line {mark.line + 1}, column {mark.column + 1})"


def _no_such_option(error, argv) -> str:
    """`method: nosuch` in a preset's defaults (the command line's are checked before Hydra starts)."""
    text = str(error)
    found = re.search(r"Could not find '([^']+)/([^/']+)'", text)
    listed = re.search(r"Available options in '[^']+':\n((?:\t.*\n?)*)", text)
    if not found or not listed:
        return ""
    group, name = found.groups()
    return f"`{group}` ({name!r}) is not in conf/{group}/{closest(name, listed.group(1).split())}"


def _no_such_group(error, argv) -> str:
    """`- override /methd: full` in a preset's defaults."""
    found = re.search(r"Could not override '([^']+)'\. No match in the defaults list", str(error))
    if not found:
        return ""
    group, where = found.group(1), _where(error)
    about = _about(_default_in(where, group, argv), where)
    return f"`{group}`{about} is not a config group{closest(group, config.GROUPS)}"


def _default_in(where: str, group: str, argv: list[str]):
    """The option the defaults list of config `where` gives `group` (`- override /methd: full` -> 'full')."""
    import yaml

    for folder in config._config_dirs(argv):
        path = folder / f"{where}.yaml"
        if where and path.is_file():
            for item in (yaml.safe_load(path.read_text()) or {}).get("defaults") or []:
                for key, value in (item.items() if isinstance(item, dict) else ()):
                    if key.split()[-1].lstrip("/") == group:
                        return value
    return None


def _not_a_parameter(error, argv) -> str:
    """A key of `method.params` the chosen method does not have: in a sweep over methods, the method is named."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    from bench import methods

    bad = next((e for e in _chain(error) if isinstance(e, (ConfigKeyError, ConfigAttributeError))), None)
    key = str(getattr(bad, "full_key", "") or "")
    owner = next((m for m in methods.registry().values() if m.config_cls is getattr(bad, "object_type", None)), None)
    if not key.startswith("method.params.") or owner is None:
        return ""
    known = [f.name for f in dataclasses.fields(owner.config_cls)]
    valid = closest(key.rsplit(".", 1)[1], known) if known else ", which has none"
    return f"`{key}`{_about(_given(key, argv), _where(error))} is not a parameter of method {owner.name}{valid}"


def _not_a_mapping(error, argv) -> str:
    """`train: 5` in a preset: a single value where a group's keys belong."""
    found = re.search(r"Merge error: \w+ is not a subclass of (\w+)\. value: (.*)", str(error))
    if not found:
        return ""
    schemas = {cls.__name__: group for group, cls in config.SCHEMAS.items()}
    group = schemas.get(found.group(1), found.group(1))
    about = _about(_typed(found.group(2).strip()), _where(error))
    return f"`{group}`{about} must be a mapping of {group}'s keys, not one value"


if __name__ == "__main__":
    main()
