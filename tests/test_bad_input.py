"""Bad input, one row each: `peft-bench ...` prints one line naming the config key or file and the value, exits 2
before any training, and writes no record.

pytest tests/test_bad_input.py        (a real `peft-bench` process per row, tiny-bert: ~5 s each on 2 cores)
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import FAST

ROOT = Path(__file__).parent.parent
GOOD_TRAIN = "text,label\n" + "".join(f"text number {i},{'yes' if i % 2 else 'no'}\n" for i in range(20))
GOOD_TEST = "text,label\n" + "".join(f"held out {i},{'yes' if i % 2 else 'no'}\n" for i in range(6))


@dataclass
class Case:
    args: list[str]  # after `peft-bench model=tiny-bert <FAST>`; {dir} is the case's own folder of files
    says: list[str]  # what the one line must contain (the key or file, and the value)
    files: dict[str, str] = field(default_factory=dict)  # name -> content, written into {dir}


def own_data(train: str = "train.csv", test: str = "test.csv") -> list[str]:
    return ["task=files", f"task.dataset.data_files.train={{dir}}/{train}",
            f"task.dataset.data_files.test={{dir}}/{test}"]


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
    "batch_size not a number": Case(["train.batch_size=abc"], ["`train.batch_size` ('abc')", "integer"]),
    "model folder that does not exist": Case(
        ["model=hub", "model.name_or_path={dir}/no-such-model"],
        ["`model.name_or_path`", "no-such-model", "neither a folder nor a Hub id"]),
    "unknown method": Case(["method=lorra"], ["`method` ('lorra')", "closest: lora"]),
    "unknown key": Case(["train.batch_sise=4"], ["`train.batch_sise` is not a known key", "closest: batch_size"]),
    "bad method parameter": Case(["method.params.r=0"], ["`method.params.r` (0)", "integer >= 1"]),
    "missing model package": Case(["model=minilm-l6", "model.package='nothere-pkg==1.0'"], ["nothere-pkg==1.0"]),
}
WIRED_LATER: set[str] = set()  # cases whose check is written but not yet called by the trial


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason="check_max_length is not "
                                               "called in the trial yet")) if n in WIRED_LATER else n for n in CASES])
def test_bad_input_is_one_line_exit_2_and_no_record(name, tmp_path):
    case = CASES[name]
    folder = tmp_path / "data"
    folder.mkdir()
    for file_name, content in case.files.items():
        (folder / file_name).write_text(content)
    results = tmp_path / "results"
    args = [arg.replace("{dir}", str(folder)) for arg in case.args]
    done = subprocess.run([sys.executable, "-m", "bench.cli", "model=tiny-bert", *FAST, "train.threads=1",
                           f"results_dir={results}", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("peft-bench: "), done.stderr
    assert all(text in lines[0] for text in case.says), lines[0]
    assert not list(results.rglob("record.json")) and "train_seconds" not in done.stdout
