"""write_rates puts a search's confirmed choice for a model into a method YAML, comments kept, and nothing else:
pytest tests/test_write_rates.py
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from bench.config import CONF_DIR, params_in_key
from bench.results import record as records
from bench.results.write_rates import plan, rate_text
from tests.conftest import trial_config

GRID = {2e-3: 0.50, 6e-3: 0.80, 2e-2: 0.95, 6e-2: 0.90}  # rate -> validation accuracy on 100 items


def search(folder: Path, method: str, model: str, grid: dict[float, float | None]) -> None:
    """One seed-0 trial per rate at the params `method` runs with on `model`; None: the trial failed."""
    params = params_in_key(method, trial_config(f"method={method}", f"model={model}").method.params)
    for rate, val in grid.items():
        identity = {"method": method, "family": "x", "model": model, "task": "bbc-topic", "seed": 0}
        config = {"learning_rate": rate, "method": {"name": method, "params": params}}
        key = f"{model}-{method}-{rate}"
        if val is None:
            record = records.TrialRecord(status="failed", config=config, key=key, identity=identity,
                                         error={"type": "FloatingPointError", "message": "NaN", "phase": "train"})
        else:
            items = [1] * round(100 * val) + [0] * (100 - round(100 * val))  # nested: paired comparisons separate
            record = records.TrialRecord(status="ok", config=config, key=key, identity=identity,
                                         metrics={"quality": 0.5, "val_quality": val, "n_val": 100},
                                         items={"val_quality": items})
        records.write(record, folder / key)


def copied(tmp_path: Path, *methods: str) -> Path:
    folder = tmp_path / "method"
    folder.mkdir()
    for method in methods:
        shutil.copy(CONF_DIR / "method" / f"{method}.yaml", folder)
    return folder


def test_a_confirmed_choice_becomes_the_models_rate_under_a_comment_with_its_grid(tmp_path):
    search(tmp_path / "lr", "frod", "smollm2-135m", GRID)
    method_dir = copied(tmp_path, "frod")
    before = yaml.safe_load((method_dir / "frod.yaml").read_text())
    [(method, reason, text)] = plan(tmp_path / "lr", "smollm2-135m", method_dir)
    assert (method, reason) == ("frod", None)
    after = yaml.safe_load(text)
    assert after == {**before, "learning_rate_by_model": {"smollm2-135m": 0.02}}  # nothing else changed
    assert "# lr 2e-2 on smollm2-135m, the lowest rate validation accuracy cannot separate from the best\n" in text
    assert "# 2e-3 0.500, 6e-3 0.800, 2e-2 0.950, 6e-2 0.900.\n" in text
    assert text.index("# lr 2e-2 on smollm2-135m") < text.index("\ndefaults:")
    assert max(len(line) for line in text.splitlines()) <= 120
    (method_dir / "frod.yaml").write_text(text)
    [(_, again, _)] = plan(tmp_path / "lr", "smollm2-135m", method_dir)  # a second run leaves it
    assert again == "already holds a rate for smollm2-135m"


def test_a_yaml_with_rates_for_other_models_gets_one_more_entry(tmp_path):
    search(tmp_path / "lr", "dora", "tiny-llama", GRID)
    method_dir = copied(tmp_path, "dora")
    before = yaml.safe_load((method_dir / "dora.yaml").read_text())
    [(_, reason, text)] = plan(tmp_path / "lr", "tiny-llama", method_dir)
    assert reason is None
    assert yaml.safe_load(text)["learning_rate_by_model"] == {**before["learning_rate_by_model"], "tiny-llama": 0.02}


def test_what_is_not_safe_to_write_is_left_alone_with_the_reason(tmp_path):
    search(tmp_path / "edge", "frod", "smollm2-135m", {2e-3: 0.5, 6e-3: 0.8, 2e-2: 0.95})
    search(tmp_path / "below-failure", "frod", "smollm2-135m", {2e-3: 0.5, 6e-3: 0.95, 2e-2: None, 6e-2: 0.2})
    search(tmp_path / "own", "frod", "minilm-l6", GRID)
    method_dir = copied(tmp_path, "frod")
    reasons = {name: plan(tmp_path / name, model, method_dir)[0][1]
               for name, model in (("edge", "smollm2-135m"), ("below-failure", "smollm2-135m"), ("own", "minilm-l6"))}
    assert reasons["edge"].startswith("at the edge of its grid")
    assert reasons["below-failure"].startswith("not confirmed")
    assert reasons["own"] == "its learning_rate was chosen on minilm-l6"


def test_a_search_at_other_params_is_not_the_yamls():
    """frod searched at another sparse rate chose for that variant: the YAML's rate stays as it is."""
    from bench.results.write_rates import runs_with
    from bench.results.choose_lr import Choice

    params = params_in_key("frod", trial_config("method=frod", "model=smollm2-135m").method.params)
    same = Choice("smollm2-135m", "bbc-topic", "frod", 0.02, 0.9, 100, 1, params=json.dumps(params, sort_keys=True))
    other = Choice("smollm2-135m", "bbc-topic", "frod", 0.02, 0.9, 100, 1,
                   params=json.dumps({**params, "sparse_rate": 0.5}, sort_keys=True))
    assert runs_with(same) and not runs_with(other)


def test_rates_read_as_the_yamls_write_them():
    assert [rate_text(r) for r in (9e-3, 2.7e-3, 0.02, 1e-4)] == ["9.0e-3", "2.7e-3", "2.0e-2", "1.0e-4"]
    assert [rate_text(r, short=True) for r in (9e-3, 2.7e-3, 0.3)] == ["9e-3", "2.7e-3", "3e-1"]
