"""Every command in README.md, docs/*.md and examples/*/README.md runs, so the documentation cannot drift from the code.

.venv/bin/python -m pytest -q tests/test_docs.py

Commands are the lines of ```bash blocks and the inline `peft-bench...` / `make ...` spans. Each runs as a user
types it: in bash with this environment's bin/ first on PATH (`.venv/` in a command means this environment), or,
for peft-bench, peft-bench-serve and peft-bench-methods, through the console script's entry function in this process
(the same code, without an interpreter and its imports for each command):
- `peft-bench` with `--cfg`: as written (`.venv/bin/peft-bench --cfg job`, the check that set-up worked: the real
  script). Any other `peft-bench`: as written plus `--cfg job --resolve`, which composes and prints the config
  without training; the printed config must then build a valid TrialConfig. A sweep is checked at its first and
  its last job (Hydra's own expansion of lists, glob() and range()); a job two commands share is composed once.
- the own-data example also trains for real, on the tiny model, and its trial gets the name README gives.
- `peft-bench-serve`: as written plus `--cfg job`.
- `peft-bench-methods`: as written; docs/methods.md's trainable fractions must be what it prints.
- `peft-bench-report`: as written, in a temporary folder holding a small sweep cut from the committed study.
- `make`: a dry run (`make -n`), which fails on an unknown target.
- `pip install -e '.[X]'`: X must be an extra in pyproject.toml (installing is make's job, timed elsewhere).
- `pytest -m M`: M must be a registered marker (those runs take minutes or a GPU).
- `source .venv/bin/activate`: activates, and then `peft-bench` is found.
A command no rule knows fails the test: add a rule rather than leave a command unchecked.
Commands run with one torch thread each: on 2 loaded cores a second thread made PiSSA's SVD in `peft-bench-methods`
fifty times slower, and nothing here measures speed.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import shlex
import subprocess
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from functools import cache
from pathlib import Path
from unittest import mock

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "examples").glob("*/README.md"))]
BIN = Path(sys.prefix) / "bin"
STUDY = ROOT / "results" / "tradeoffs-3seed" / "trials.csv"  # a committed study that stays as it is
REPORT_SLICE = {"model": "minilm-l6", "methods": ["lora", "full", "bitfit", "ia3", "prompt-tuning", "adapter-parallel"]}
SHELL_LANGUAGES = {"bash", "sh", "shell"}
INLINE = ("peft-bench", "peft-bench-report", "peft-bench-methods", "make")  # commands also taken from prose
COMMANDS = (*INLINE, "pip", "pytest", "source", ".venv/bin/peft-bench", "peft-bench-serve", "python")
TINY_TRIAL = ["model=tiny-bert", "train.max_steps=4", "train.warmup_steps=1", "train.threads=1",
              "train.latency_repeats=2", "train.probe_samples=8"]
OWN_DATA_NAME = "results/single/minilm-l6__reviews__lora__seed0"
HYDRA = threading.Lock()  # Hydra's global state holds one initialised config folder at a time
WORKERS = 4  # most runs are a second of one core waiting on imports
# What the commands' processes get: read once, so that a command run in this process may set and restore variables
# of its own while other threads start processes.
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(sys.prefix),
       "PYTHONWARNINGS": "ignore", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


@dataclasses.dataclass(frozen=True)
class Command:
    text: str
    where: str  # file:line, for the failure message

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.text)


def extract(path: Path, root: Path = ROOT) -> list[Command]:
    """Shell lines of fenced bash blocks (comments and continuations handled) and inline command spans."""
    text, found = path.read_text(), []
    name = path.relative_to(root)
    fences = list(re.finditer(r"^```(\w*)\n(.*?)^```", text, re.DOTALL | re.MULTILINE))
    for fence in fences:
        if fence.group(1) not in SHELL_LANGUAGES:
            continue
        first_line = text[: fence.start(2)].count("\n") + 1
        for offset, line in enumerate(fence.group(2).replace("\\\n", " ").splitlines()):
            command = _without_comment(line)
            if command:
                found.append(Command(command, f"{name}:{first_line + offset}"))
    prose = re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.DOTALL | re.MULTILINE)
    for span in re.finditer(r"(?<!`)`([^`]+)`(?!`)", prose):
        command = " ".join(span.group(1).split())
        if command.split(" ", 1)[0] in INLINE and " " in command:  # a command with arguments, not a program's name
            found.append(Command(command, f"{name}:{prose[: span.start()].count(chr(10)) + 1}"))
    return found


def _without_comment(line: str) -> str:
    """The line up to a `#` that starts a shell comment (outside quotes, after a space), quoting kept as written."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].strip()
    return line.strip()


def all_commands() -> list[Command]:
    seen, commands = set(), []
    for path in DOCS:
        for command in extract(path):
            if command.text not in seen:
                seen.add(command.text)
                commands.append(command)
    return commands


def bash(command: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    command = re.sub(r"(^|\s)\.venv/", rf"\g<1>{sys.prefix}/", command)
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=timeout, check=False)


def in_process(program: str, argv: list[str]) -> subprocess.CompletedProcess:
    """`program ARGV` through its console script's entry function, in this process and from the repository root,
    as `bash` would give it back. Only from the thread that runs the in-process rules: the standard streams, the
    working folder and Hydra's state are the process's. What the entry function sets in the environment is undone."""
    main = {"peft-bench": "bench.cli.run", "peft-bench-serve": "bench.cli.serve",
            "peft-bench-methods": "bench.cli.methods"}
    out, err, code = io.StringIO(), io.StringIO(), 0
    saved = dict(os.environ)
    with HYDRA, _in_folder(ROOT), mock.patch.object(sys, "argv", [program, *argv]), redirect_stdout(out), \
            redirect_stderr(err), warnings.catch_warnings():
        try:
            __import__(main[program], fromlist=["main"]).main()
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
            if isinstance(stop.code, str):
                err.write(stop.code)
        finally:
            for name in set(os.environ) - set(saved):
                del os.environ[name]
            os.environ.update(saved)
    return subprocess.CompletedProcess([program, *argv], code, out.getvalue(), err.getvalue())


@contextmanager
def _in_folder(folder: Path):
    before = Path.cwd()
    os.chdir(folder)  # relative paths in the docs' commands (examples/own-data) are the repository's
    try:
        yield
    finally:
        os.chdir(before)


def ok(result: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{what}: exit {result.returncode}\n{result.stdout[-1500:]}\n{result.stderr[-3000:]}"
    return result


# --- peft-bench ----------------------------------------------------------------------------------------------------


def jobs(argv: list[str]) -> list[list[str]]:
    """The overrides of a command's first and last job: Hydra's own expansion of lists, glob() and range()."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = [arg for arg in argv if not arg.startswith("-")]
    with HYDRA, initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
        parsed = parser.parse_overrides(overrides)
        values = [list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
                  for o in parsed]
    keys = [o.get_key_element() for o in parsed]
    return [[f"{k}={v[index]}" for k, v in zip(keys, values)] for index in (0, -1)]


def check_peft_bench(command: Command, tmp: Path) -> None:
    argv = command.argv[1:]
    if any(arg.startswith("--cfg") or arg in ("-c", "--info", "--help") for arg in argv):
        real = command.argv[0] != "peft-bench"  # `.venv/bin/peft-bench`: the script itself is the point
        ok(bash(command.text, ROOT) if real else in_process("peft-bench", argv), command.where)
        return
    flags = [arg for arg in argv if arg.startswith("-") and arg not in ("-m", "--multirun")]
    assert not flags, f"{command.where}: no rule for the flags {flags}"
    for job in {tuple(j) for j in jobs(argv)}:
        printed = ok(composed(job), command.where)
        _valid_trial(yaml.safe_load(printed.stdout), command)


@cache
def composed(job: tuple[str, ...]) -> subprocess.CompletedProcess:
    """`peft-bench JOB --cfg job --resolve`: once for each job, however many commands run it."""
    return in_process("peft-bench", [*job, "--cfg", "job", "--resolve"])


def _valid_trial(raw: dict, command: Command) -> None:
    """The printed config builds a TrialConfig, as the CLI would build it before training."""
    from bench import config

    fields = {f.name for f in dataclasses.fields(config.TrialConfig)}
    trial = {key: value for key, value in raw.items() if key in fields}
    try:
        config.from_dict(trial)
    except config.ConfigError as error:
        pytest.fail(f"{command.where}: {command.text}: {error}")


def check_own_data(command: Command, tmp: Path) -> None:
    """README's own-data example: the trial name it promises, and a real (tiny) training run on the shipped files."""
    printed = ok(in_process("peft-bench", [*command.argv[1:], "--cfg", "all", "--resolve"]), command.where)
    assert yaml.safe_load(printed.stdout)["hydra"]["run"]["dir"] == OWN_DATA_NAME
    trained = ok(bash(shlex.join([*command.argv, *TINY_TRIAL, f"results_dir={tmp}"]), ROOT), command.where)
    assert list(tmp.glob("single/tiny-bert__reviews__lora__seed0*/record.json")), trained.stdout


# --- reports, methods, make, pip, pytest, source -------------------------------------------------------------------


REPORT_RUNNER = """
import shlex, sys
from bench.cli.report import main
for line in sys.stdin.read().splitlines():
    try:
        code = main(shlex.split(line)[1:])
    except SystemExit as exit:
        code = exit.code
    except Exception as error:
        code = repr(error)
    print("exit", code, flush=True)
"""


def check_reports(commands: list[Command], tmp: Path) -> dict[str, BaseException | None]:
    """All report commands, each with its own arguments, one after the other in one interpreter (pandas and
    matplotlib imported once), in a folder holding each sweep they name, cut from the committed study."""
    import pandas as pd

    table = pd.read_csv(STUDY)
    small = table[(table["model"] == REPORT_SLICE["model"]) & table["method"].isin(REPORT_SLICE["methods"])]
    expected = {}
    for command in commands:
        source = Path(command.argv[1])
        sweeps = [source] + ([Path(command.argv[command.argv.index("--latency-from") + 1])]
                             if "--latency-from" in command.argv else [])
        for sweep in sweeps:
            target = tmp / (sweep if sweep.suffix in (".csv", ".parquet") else sweep / "trials.csv")
            target.parent.mkdir(parents=True, exist_ok=True)
            small.to_csv(target, index=False)
        default = Path("reports") / (source.parent.name if source.suffix else source.name)
        expected[command.text] = tmp / (command.argv[command.argv.index("--out") + 1] if "--out" in command.argv
                                        else default) / "report.html"
    result = subprocess.run([sys.executable, "-c", REPORT_RUNNER], input="\n".join(expected), cwd=tmp, env=ENV,
                            capture_output=True, text=True, timeout=600, check=False)
    codes = re.findall(r"^exit (.*)$", result.stdout, re.MULTILINE)
    outcomes = {}
    for (text, html), code in zip(expected.items(), codes + [None] * len(expected)):
        where = next(c.where for c in commands if c.text == text)
        fine = code == "0" and html.is_file()
        written = "written" if html.is_file() else "missing"
        outcomes[text] = None if fine else AssertionError(
            f"{where}: {text}: exit {code}, {html} {written}\n{result.stderr[-3000:]}")
    return outcomes


def check_methods(command: Command, tmp: Path) -> None:
    import torch
    import transformers

    threads, verbosity = torch.get_num_threads(), transformers.logging.get_verbosity()
    torch.set_num_threads(1)  # see the top of this file
    try:
        result = ok(in_process("peft-bench-methods", command.argv[1:]), command.where)
    finally:  # as the tests after this one expect them
        torch.set_num_threads(threads)
        transformers.logging.set_verbosity(verbosity)
    if "--model" in command.argv and command.argv[command.argv.index("--model") + 1] == "minilm-l6":
        printed = dict(re.findall(r"^(\S+)\s+\S+\s+(?:yes|no)\s+([\d.]+%)", result.stdout, re.MULTILINE))
        page = (ROOT / "docs" / "methods.md").read_text()
        documented = dict(re.findall(r"^\| `(\S+)` \|.*\| ([\d.]+%) \|$", page, re.MULTILINE))
        assert printed and documented == {name: printed[name] for name in documented}, "docs/methods.md drifted"
        assert set(printed) <= set(documented), f"not in docs/methods.md: {set(printed) - set(documented)}"


def check_make(command: Command, tmp: Path) -> None:
    ok(bash(command.text.replace("make ", "make -n ", 1), ROOT), command.where)


def check_pip(command: Command, tmp: Path) -> None:
    match = re.fullmatch(r"pip install -e '?\.\[(\w+)\]'?", command.text)
    assert match, f"{command.where}: no rule for {command.text!r}"
    from importlib.metadata import metadata

    extras = metadata("peft-bench").get_all("Provides-Extra") or []  # pyproject.toml's extras, as installed
    assert match.group(1) in extras, f"{command.where}: no extra {match.group(1)!r} in pyproject.toml"


def check_pytest(command: Command, tmp: Path) -> None:
    match = re.fullmatch(r"pytest -m (\w+)", command.text)
    assert match, f"{command.where}: no rule for {command.text!r}"
    ini = re.search(r"^markers = \[(.*?)^\]", (ROOT / "pyproject.toml").read_text(), re.DOTALL | re.MULTILINE)
    markers = re.findall(r'"(\w+):', ini.group(1)) if ini else []
    assert match.group(1) in markers, f"{command.where}: marker {match.group(1)!r} not registered in pyproject.toml"


def check_source(command: Command, tmp: Path) -> None:
    ok(bash(f"{command.text} && command -v peft-bench", ROOT), command.where)


def check_serve(command: Command, tmp: Path) -> None:
    """peft-bench-serve is a Hydra app like peft-bench: its config must compose (--cfg job runs nothing)."""
    ok(in_process("peft-bench-serve", [*command.argv[1:], "--cfg", "job"]), command.where)


def check_python_module(command: Command, tmp: Path) -> None:
    match = re.fullmatch(r"python -m ([\w.]+)\b.*", command.text)
    assert match, f"{command.where}: no rule for {command.text!r}"
    import importlib

    importlib.import_module(match.group(1))  # the module the docs name exists and imports


def rule(command: Command):
    head = command.argv[0]
    if head in ("peft-bench", ".venv/bin/peft-bench"):
        return check_own_data if "task.name=reviews" in command.text else check_peft_bench
    return {"peft-bench-report": check_reports, "peft-bench-methods": check_methods, "make": check_make,
            "pip": check_pip, "pytest": check_pytest, "source": check_source, "peft-bench-serve": check_serve,
            "python": check_python_module}.get(head)


# --- the tests -----------------------------------------------------------------------------------------------------


IN_THIS_THREAD = (check_peft_bench, check_own_data, check_serve, check_methods, check_python_module)  # in-process


@cache
def outcomes(tmp: Path) -> dict[str, BaseException | None]:
    """Every command checked once: the processes several at a time, meanwhile the in-process ones in this thread;
    the tests below report them one by one."""

    def run(numbered):
        index, command = numbered
        folder = tmp / f"command{index}"
        folder.mkdir()
        try:
            rule(command)(command, folder)
        except BaseException as error:  # noqa: BLE001 - reported by the command's own test
            return command.text, error
        return command.text, None

    commands = list(enumerate(c for c in all_commands() if rule(c)))
    reports = [c for _, c in commands if rule(c) is check_reports]
    here = [(i, c) for i, c in commands if rule(c) in IN_THIS_THREAD]
    (tmp / "reports").mkdir()
    with ThreadPoolExecutor(WORKERS) as pool:
        batch = pool.submit(check_reports, reports, tmp / "reports")
        elsewhere = pool.map(run, [(i, c) for i, c in commands if c not in reports and (i, c) not in here])
        local = dict(map(run, here))
        return dict(elsewhere) | local | batch.result()


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    return outcomes(tmp_path_factory.mktemp("docs"))


def test_every_command_has_a_rule():
    unknown = [f"{c.where}: {c.text}" for c in all_commands() if rule(c) is None]
    assert not unknown, "commands no rule checks (add one to tests/test_docs.py):\n" + "\n".join(unknown)


def test_the_docs_have_commands_and_the_readme_its_sections():
    commands = all_commands()
    assert len(commands) > 30 and {c.argv[0] for c in commands} <= set(COMMANDS)
    readme = (ROOT / "README.md").read_text()
    assert f"`{OWN_DATA_NAME}/`" in readme  # the trial name check_own_data asserts is the one README gives
    for page in ("metrics", "methods", "sweeps", "report", "findings"):
        assert f"(docs/{page}.md" in readme, f"README links docs/{page}.md"


@pytest.mark.parametrize("command", all_commands(), ids=lambda c: c.where)
def test_command_runs(command, checked):
    if rule(command) is None:
        pytest.skip("no rule: see test_every_command_has_a_rule")
    error = checked[command.text]
    if error is not None:
        raise error


def test_extract_finds_fenced_lines_and_inline_commands(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Run `peft-bench sweep=quick\n'seed=range(3)'` or `peft-bench`.\n\n```bash\n"
                    "peft-bench method=full 'task.name=a #1'  # a comment\nmake demo \\\n  PYTHON=python3.12\n```\n\n"
                    "```\npeft-bench: output, not a command\n```\n")
    found = [(c.text, c.where) for c in extract(page, tmp_path)]
    assert found == [("peft-bench method=full 'task.name=a #1'", "page.md:5"),
                     ("make demo    PYTHON=python3.12", "page.md:6"),
                     ("peft-bench sweep=quick 'seed=range(3)'", "page.md:1")]
