"""The command-line faces' answers to bad input, in one place: each is one line naming the key (or file) and the
value, then exit 2, instead of Hydra's page of traceback. Checks that run before Hydra starts (a plugin from an extra,
a results folder that cannot be written), the runner every Hydra face goes through (peft-bench, peft-bench-serve),
and the wording of what Hydra raises while composing (hydra_error_line; what only OmegaConf knows:
bench.config.omegaconf_error_line).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

import yaml
from hydra.errors import HydraException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from bench import closest, config, methods
from bench.config import ConfigError, check_group_choices
from bench.launch.lifetime import SWEEP_ENV, process_identity


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


def stop(error: ConfigError, program: str = "peft-bench", trial_dir: Path | None = None) -> NoReturn:
    """Bad input on a single run, or shared by every trial of a sweep: one line, exit 2, no record. trial_dir: the
    folder Hydra made for the run before its config was checked, removed while it is empty (rmdir removes only an
    empty folder, so a finished trial's record, rerun with bad input, stays as it was)."""
    if trial_dir is not None:
        with contextlib.suppress(OSError):
            trial_dir.rmdir()
    print(f"{program}: {error}", file=sys.stderr)
    sys.exit(2)


def run_app(program: str, app) -> None:
    """Run a Hydra app (`app`: its @hydra.main function) as `program`, so that bad input on the command line or in
    composing conf/ ends in one line naming the key and value, exit 2; peft-bench-serve runs through here too."""
    traces = bool(os.environ.get("HYDRA_FULL_ERROR"))  # the user's own: Hydra's whole page, as Hydra gives it

    def run() -> None:
        check_group_choices(sys.argv[1:])
        check_plugins(sys.argv[1:])
        check_results_dir(sys.argv[1:])
        os.environ[SWEEP_ENV] = process_identity()  # trials end with this process, launcher processes between or not
        try:
            app()
        except (HydraException, OmegaConfBaseException, yaml.YAMLError) as error:
            if traces:
                raise
            raise ConfigError(hydra_error_line(error, sys.argv[1:])) from error

    config.exit_on_bad_input(program, run)


def hydra_error_line(error: BaseException, argv: list[str]) -> str:
    """One line naming the key (or file) and the value, for what config.omegaconf_error_line would word in Hydra's
    terms: a
    group or option that does not exist, a key that is not a parameter of the method, a value where a mapping
    belongs, a YAML file that does not parse; each with the config file it came from. Anything else:
    config.omegaconf_error_line."""
    for explainer in (_not_yaml, _no_such_option, _no_such_group, _not_a_parameter, _not_a_mapping):
        line = explainer(error, argv)
        if line:
            return line
    return _in_file(config.omegaconf_error_line(error), _where(error))


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
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _not_yaml(error, argv) -> str:
    bad = next((e for e in _chain(error) if isinstance(e, yaml.YAMLError)), None)
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
