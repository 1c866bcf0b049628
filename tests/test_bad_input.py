"""Bad input, one row each: `peft-bench ...` prints one line naming the config key or file and the value, exits 2
before any training, and writes no record.

.venv/bin/python -m pytest -q tests/test_bad_input.py

Each row runs the CLI's entry function (bench.cli.run.main) in this process with the row's command line, as the
`peft-bench` script does: torch and transformers load once for the table, not once a row (a process a row cost
~5 CPU-seconds each). A few rows also run as a real `peft-bench` process, which shows the whole of stderr: no Hydra
page, no warning, no traceback around the line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import FAST

ROOT = Path(__file__).parent.parent
PEFT_BENCH = Path(sys.prefix) / "bin" / "peft-bench"  # the console script pip made
GOOD_TRAIN = "text,label\n" + "".join(f"text number {i},{'yes' if i % 2 else 'no'}\n" for i in range(20))
GOOD_TEST = "text,label\n" + "".join(f"held out {i},{'yes' if i % 2 else 'no'}\n" for i in range(6))


@dataclass
class Case:
    args: list[str]  # after `peft-bench model=tiny-bert <FAST>` (an option first: before it); {dir}: the case's folder
    says: list[str]  # what the one line must contain (the key or file, and the value)
    files: dict[str, str] = field(default_factory=dict)  # name -> content, written into {dir}


def own_data(train: str = "train.csv", test: str = "test.csv") -> list[str]:
    return ["task=files", f"task.dataset.data_files.train={{dir}}/{train}",
            f"task.dataset.data_files.test={{dir}}/{test}"]


def preset(yaml: str) -> dict[str, str]:
    """A user's own sweep preset `mine`, in a config folder given with --config-dir {dir}/conf."""
    return {"conf/sweep/mine.yaml": "# @package _global_\n" + yaml}


MY_PRESET = ["--config-dir", "{dir}/conf", "sweep=mine"]
TRAIN_KEY, TEST_KEY = "`task.dataset.data_files.train`", "`task.dataset.data_files.test`"
BAD_JSONL = '{"text": "a", "label": "yes"}\n{"text": "b", \n'
NO_LABEL_JSONL = '{"text": "a", "label": "yes"}\n{"text": "b"}\n'
CASES = {
    "not valid CSV": Case(own_data(), [TRAIN_KEY, "train.csv", "is not valid CSV"],
                          {"train.csv": 'text,label\n"never closed,yes\nb,no\n', "test.csv": GOOD_TEST}),
    "CSV row with more fields than the header": Case(
        own_data(), [TRAIN_KEY, "train.csv", "is not valid CSV"],
        {"train.csv": GOOD_TRAIN + "one,yes,extra\n", "test.csv": GOOD_TEST}),
    "not valid JSON lines": Case(own_data("train.jsonl"), [TRAIN_KEY, "train.jsonl", "not valid JSON lines", "line 2"],
                                 {"train.jsonl": BAD_JSONL, "test.csv": GOOD_TEST}),
    "row without the label": Case(own_data("train.jsonl"), ["`task.label_column` ('label')", "line 2", "train.jsonl"],
                                  {"train.jsonl": NO_LABEL_JSONL, "test.csv": GOOD_TEST}),
    "empty label field": Case(own_data(), ["`task.label_column` ('label')", "line 3", "train.csv"],
                              {"train.csv": "text,label\na,yes\nb,\n", "test.csv": GOOD_TEST}),
    "empty file": Case(own_data(), [TRAIN_KEY, "train.csv", "is empty"], {"train.csv": "", "test.csv": GOOD_TEST}),
    "header only": Case(own_data(), [TEST_KEY, "test.csv", "has no rows"],
                        {"train.csv": GOOD_TRAIN, "test.csv": "text,label\n"}),
    "test labels never in train": Case(own_data(), [TEST_KEY, "never seen in training", "'maybe'"],
                                       {"train.csv": GOOD_TRAIN, "test.csv": GOOD_TEST + "unsure,maybe\n"}),
    "one class": Case(own_data(), ["`task.label_column` ('label')", "one class only", "'yes'"],
                      {"train.csv": "text,label\n" + "a,yes\n" * 10, "test.csv": "text,label\nb,yes\n"}),
    "missing text column": Case(own_data(), ["`task.text_column` ('text')", "train.csv", "valid: label, sentence"],
                                {"train.csv": GOOD_TRAIN.replace("text,", "sentence,", 1), "test.csv": GOOD_TEST}),
    "data file that does not exist": Case(own_data(), [TRAIN_KEY, "train.csv", "does not exist"],
                                          {"test.csv": GOOD_TEST}),
    "no data files": Case(["task=files"], ["`task.dataset.data_files` is required"]),
    "max_length above the position limit": Case(["train.max_length=4096"], ["`train.max_length` (4096)", "512"]),
    "virtual tokens past the position limit": Case(
        ["method=prompt-tuning", "method.params.num_virtual_tokens=100000"],
        ["`method.params.num_virtual_tokens` (100000)", "`train.max_length` (32)", "512 positions"]),
    "no training step left to time": Case(["train.max_steps=2", "train.warmup_steps=1"],
                                          ["`train.max_steps` (2)", "`train.warmup_steps` (1)", "no timed step"]),
    "results folder that cannot be made": Case(["results_dir=/proc/forbidden"],
                                               ["`results_dir` ('/proc/forbidden')", "cannot be created"]),
    "batch_size not a number": Case(["train.batch_size=abc"], ["`train.batch_size` ('abc')", "integer"]),
    "model folder that does not exist": Case(
        ["model=hub", "model.name_or_path={dir}/no-such-model"],
        ["`model.name_or_path`", "no-such-model", "neither a folder nor a Hub id"]),
    "unknown method": Case(["method=lorra"], ["`method` ('lorra')", "closest: lora"]),
    "a value every trial of a sweep shares": Case(["-m", "method=lora,full", "seed=abc"], ["`seed` ('abc')"]),
    "a list of methods": Case(["method=[lora,full]"], ["`method` ([lora,full]) is a list", "-m method=lora,full"]),
    "unknown key": Case(["train.batch_sise=4"], ["`train.batch_sise` is not a known key", "closest: batch_size"]),
    "not a peft type": Case(["method=peft", "method.params.peft_type=NOPE"],
                            ["`method.params.peft_type` ('NOPE')", "not a peft type", "valid: ADALORA"]),
    "misspelt field of a peft config": Case(
        ["method=peft", "method.params.peft_type=HRA", "method.params.config.rr=8"],
        ["`method.params.config.rr`", "not a field of peft's HRAConfig", "closest: r"]),
    "bad method parameter": Case(["method.params.r=0"], ["`method.params.r` (0)", "integer >= 1"]),
    "missing model package": Case(["model=minilm-l6", "model.package='nothere-pkg==1.0'"], ["nothere-pkg==1.0"]),
    "unknown sweep preset": Case(["sweep=nosuch"], ["`sweep` ('nosuch')", "not in conf/sweep/", "valid: "]),
    "unknown method over a preset": Case(["sweep=quick", "method=nosuch"], ["`method` ('nosuch')", "conf/method/"]),
    "unknown launcher": Case(["hydra/launcher=nosuch"], ["`hydra/launcher` ('nosuch')", "valid: basic, joblib"]),
    "method parameter a swept method lacks": Case(
        ["sweep=quick", "method=lora,full", "method.params.r=8"],
        ["`method.params.r` (8)", "not a parameter of method full, which has none"]),
    "typo'd group in a preset": Case(MY_PRESET, ["`methd` ('full', in sweep/mine)", "not a config group",
                                                 "closest: method"], preset("defaults:\n  - override /methd: full\n")),
    "unknown option in a preset": Case(MY_PRESET, ["`method` ('nosuch')", "not in conf/method/"],
                                       preset("defaults:\n  - override /method: nosuch\n")),
    "unknown key in a preset": Case(MY_PRESET, ["`train.batch_sise` (in sweep/mine)", "closest: batch_size"],
                                    preset("train:\n  batch_sise: 4\n")),
    "not a number in a preset": Case(MY_PRESET, ["`train.batch_size` ('abc', in sweep/mine)", "integer"],
                                     preset("train:\n  batch_size: abc\n")),
    "a value where a preset's group belongs": Case(MY_PRESET, ["`train` (5, in sweep/mine)", "mapping"],
                                                   preset("train: 5\n")),
    "parameter the preset's method lacks": Case(
        [*MY_PRESET, "method=full"], ["`method.params.alpha` (in sweep/mine)", "not a parameter of method full"],
        preset("method:\n  params:\n    alpha: 16\n")),
    "interpolation that does not resolve": Case(MY_PRESET, ["`train.lr_scheduler`", "'nosuch' not found"],
                                                preset("train:\n  lr_scheduler: ${nosuch}\n")),
    "preset that is not YAML": Case(MY_PRESET, ["mine.yaml is not valid YAML", "line 3"], preset("train: [4\n")),
}
# Also as a real process: a data check the trial makes (after a cache-filling child ran), and two in composing.
IN_A_PROCESS = ("not valid JSON lines", "batch_size not a number", "typo'd group in a preset",
                "results folder that cannot be made")


def write_files(case: Case, tmp_path: Path) -> tuple[list[str], Path]:
    """The case's files written into its folder; its command line (after `peft-bench`) and its results folder."""
    folder = tmp_path / "data"
    folder.mkdir()
    for name, content in case.files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(content)
    results = tmp_path / "results"
    args = [arg.replace("{dir}", str(folder)) for arg in case.args]
    first = next((i for i, arg in enumerate(args) if "=" in arg), len(args))  # Hydra's options come before overrides
    return [*args[:first], "model=tiny-bert", *FAST, "train.threads=1", f"results_dir={results}", *args[first:]], \
        results


@pytest.fixture
def restored():
    """The CLI's entry function sets process state a `peft-bench` process never gives back (environment variables,
    torch's thread count): put it back, so the next row and the next test start as they would have."""
    import torch

    saved, threads = dict(os.environ), torch.get_num_threads()
    yield
    for name in set(os.environ) - set(saved):  # HYDRA_FULL_ERROR, the sweep's identity, start time and size
        del os.environ[name]
    os.environ.update(saved)
    torch.set_num_threads(threads)


def check(case: Case, code, stdout: str, stderr: str, results: Path) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, stdout[-2000:] + stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("peft-bench: "), stderr
    assert all(text in lines[0] for text in case.says), lines[0]
    assert not list(results.rglob("record.json")) and "train_seconds" not in stdout
    assert not [p for p in results.glob("*/*") if p.is_dir()], "a refused run left its trial folder behind"


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_exit_2_and_no_record(name, tmp_path, monkeypatch, capsys, restored):
    from bench.cli import run as cli
    from bench.launch import shared

    argv, results = write_files(CASES[name], tmp_path)
    monkeypatch.setattr(sys, "argv", ["peft-bench", *argv])
    # A trial first fills the caches it shares, in a child process that sees the bad data and stays silent: a
    # second interpreter a row (the base probe score depends on the data). The real-process rows keep that part.
    monkeypatch.setattr(shared, "fill_shared_caches", lambda cfg: {})
    with pytest.raises(SystemExit) as ended:
        cli.main()
    printed = capsys.readouterr()
    check(CASES[name], ended.value.code, printed.out, printed.err, results)


@pytest.mark.parametrize("name", IN_A_PROCESS)
def test_the_peft_bench_script_prints_nothing_but_the_line(name, tmp_path):
    argv, results = write_files(CASES[name], tmp_path)
    done = subprocess.run([str(PEFT_BENCH), *argv], cwd=ROOT, capture_output=True, text=True, timeout=300)
    check(CASES[name], done.returncode, done.stdout, done.stderr, results)


def test_in_a_sweep_a_value_that_does_not_resolve_fails_its_trials_and_the_sweep_goes_on(tmp_path, monkeypatch,
                                                                                          capsys, restored):
    """A sweep records bad input per trial (phase `config`) and exits 0, where a single run stops with one line."""
    import json

    from bench.cli import run as cli

    case = Case(["--config-dir", "{dir}/conf", "-m", "sweep=mine", "method=lora,bitfit", "hydra/launcher=basic"], [],
                CASES["interpolation that does not resolve"].files)
    argv, results = write_files(case, tmp_path)
    monkeypatch.setattr(sys, "argv", ["peft-bench", *argv])
    cli.main()  # returns: no SystemExit
    found = [json.loads(path.read_text()) for path in results.rglob("record.json")]
    assert sorted(r["identity"]["method"] for r in found) == ["bitfit", "lora"]
    assert all(r["status"] == "failed" and r["error"]["phase"] == "config" and "`train.lr_scheduler`" in
               r["error"]["message"] for r in found)
    assert "2 trials: 0 ok, 2 failed" in capsys.readouterr().out
