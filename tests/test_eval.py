"""Evaluation with its uncertainty: intervals, per-item scores beside the record, the learning/forgetting curve,
and learning rates chosen on the validation split only.

pytest tests/test_eval.py
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from bench import probes, tasks
import bench.probes.retrieval  # noqa: F401  (probes.retrieval below)
from bench.config import CONF_DIR
from bench.config import ConfigError
from bench.results import record as records
from bench.results import choose_lr
from bench.tasks import curve, metrics
from bench.launch.trial import run_trial
from tests.conftest import compose_raw, trial_config

WHOLE_TEST_SPLIT = ["task.max_eval_samples=null", "task.max_train_samples=200"]  # 200: every topic in training


@pytest.fixture(scope="module")
def bert_trial():
    """tiny-bert on bbc-topic, scored on the whole test split, with checkpoints at steps 2, 4 and 5."""
    cfg = trial_config("model=tiny-bert", "method=full", *WHOLE_TEST_SPLIT, "train.max_steps=5",
                       "train.eval_every=2", "task.max_val_samples=40")
    return cfg, run_trial(cfg, progress=False)


def test_quality_has_an_interval_around_it_over_the_whole_test_split(bert_trial):
    cfg, record = bert_trial
    assert record.status == "ok", record.error
    m = record.metrics
    assert m["n_eval"] == len(tasks.raw_splits(cfg.task)["test"]) > 400  # every test article (420 of 2,092)
    assert 0 <= m["quality_ci_low"] <= m["quality"] <= m["quality_ci_high"] <= 1
    assert m["quality_ci_high"] - m["quality_ci_low"] < 0.1  # Wilson at n = 420: about +-0.05 or less


def test_majority_baseline_is_the_most_frequent_training_label_on_the_test_items(bert_trial):
    cfg, record = bert_trial
    splits = tasks.raw_splits(cfg.task)
    majority = Counter(str(r["label"]) for r in tasks.train_rows(cfg.task, splits)).most_common(1)[0][0]
    test_labels = [str(r["label"]) for r in splits["test"]]
    assert record.metrics["majority_share"] == pytest.approx(test_labels.count(majority) / len(test_labels))
    assert 0.2 < record.metrics["majority_share"] < 0.3  # five topics of about equal size


def test_per_item_scores_are_written_beside_the_record(bert_trial, tmp_path):
    _, record = bert_trial
    records.write(record, tmp_path)
    items = json.loads((tmp_path / records.ITEMS_NAME).read_text())
    assert len(items["quality"]) == record.metrics["n_eval"]
    assert set(items["quality"]) <= {0, 1}
    assert sum(items["quality"]) / len(items["quality"]) == pytest.approx(record.metrics["accuracy"])
    written = json.loads((tmp_path / records.RECORD_NAME).read_text())
    assert "items" not in written and "items" not in written["metrics"]
    assert b"\n" not in (tmp_path / records.ITEMS_NAME).read_bytes().strip()  # compact: one line


def test_eval_every_records_a_curve_on_the_validation_split(bert_trial):
    _, record = bert_trial
    points = record.items["curve"]
    assert [p["step"] for p in points] == [2, 4, 5]  # every eval_every steps, and the last step
    assert all(p["n_val"] == 40 for p in points)
    assert all(p["probe"] is not None and p["forgetting"] is not None for p in points)
    m = record.metrics
    assert m["val_quality"] == points[-1]["val_quality"] and m["n_val"] == 40 and m["curve_points"] == 3
    assert len(record.items["val_quality"]) == 40


def test_checkpoints_leave_training_and_its_speed_alone(monkeypatch):
    """The same training with and without checkpoints, and their time stays out of the timed steps: each checkpoint
    moves the clock on by an hour (a fake clock, so a loaded machine cannot blur the figures)."""
    base = ["model=tiny-bert", "method=full", "train.max_steps=4", "task.max_val_samples=8"]
    plain = run_trial(trial_config(*base), progress=False)
    hour_s, offset_s = 3600.0, [0.0]
    real_clock, point = time.perf_counter, curve.CurveCallback.point

    def slow_point(self, model, step, loss):
        offset_s[0] += hour_s
        return point(self, model, step, loss)

    monkeypatch.setattr(time, "perf_counter", lambda: real_clock() + offset_s[0])
    monkeypatch.setattr(curve.CurveCallback, "point", slow_point)
    checked = run_trial(trial_config(*base, "train.eval_every=2"), progress=False)
    assert plain.status == checked.status == "ok", (plain.error, checked.error)
    assert checked.metrics["final_loss"] == plain.metrics["final_loss"]
    assert checked.metrics["quality"] == plain.metrics["quality"]
    assert checked.metrics["curve_points"] == 2
    assert checked.metrics["seconds_train"] >= 2 * hour_s  # the train phase's wall time holds the checkpoints...
    assert checked.metrics["train_seconds"] < hour_s  # ...and the timed steps do not


@pytest.mark.parametrize("method", ["full", "lora"])
def test_the_last_checkpoints_probe_is_the_trials_and_is_scored_once(method, monkeypatch):
    """The curve's last checkpoint probes the weights the trial then measures: the trial takes that score (for
    LoRA the unmerged model's, where the trial would probe the merged copy) instead of scoring them again, and every
    forgetting figure and per-item score is the one a trial without checkpoints records."""
    base = ["model=tiny-bert", f"method={method}", "train.max_steps=4", "task.max_val_samples=8"]
    plain = run_trial(trial_config(*base), progress=False)
    scored = []
    measure = probes.retrieval.RetrievalProbe.measure
    monkeypatch.setattr(probes.retrieval.RetrievalProbe, "measure",
                        lambda self, model: scored.append(model) or measure(self, model))
    checked = run_trial(trial_config(*base, "train.eval_every=2"), progress=False)
    assert plain.status == checked.status == "ok", (plain.error, checked.error)
    assert len(scored) == 2  # steps 2 and 4; not a third time after training
    assert checked.metrics["probe_from_curve"] is True and "probe_from_curve" not in plain.metrics
    for figure in ("probe_after", "forgetting", "forgetting_ci_low", "forgetting_ci_high"):
        assert checked.metrics[figure] == plain.metrics[figure], figure
    assert checked.items["probe_after"] == plain.items["probe_after"]
    assert checked.items["curve"][-1]["probe"] == checked.metrics["probe_after"]
    if method == "lora":
        assert checked.metrics["merge_ok"] is True


def test_scoring_a_checkpoint_stays_out_of_the_training_peak(monkeypatch):
    """A checkpoint inside the CPU memory window (step 2 of a 2-step window) that holds 400 MiB while it scores:
    the trial's peak is training's, as without checkpoints."""
    base = ["model=tiny-bert", "method=full", "train.max_steps=4", "task.max_val_samples=8"]
    plain = run_trial(trial_config(*base), progress=False)
    point = curve.CurveCallback.point

    def hungry_point(self, model, step, loss):
        held = torch.ones(100 * 2**20)  # 400 MiB, written, so resident
        scored = point(self, model, step, loss)
        del held
        return scored

    monkeypatch.setattr(curve.CurveCallback, "point", hungry_point)
    checked = run_trial(trial_config(*base, "train.eval_every=2"), progress=False)
    assert checked.status == "ok", checked.error
    assert checked.metrics["curve_points"] == 2 and checked.metrics["mem_window_steps"] == 2
    assert checked.metrics["peak_mem_bytes"] < plain.metrics["peak_mem_bytes"] + 100 * 2**20


def test_generation_items_are_rouge_l_with_a_bootstrap_interval():
    record = run_trial(trial_config("model=tiny-llama", "task=bbc-headline", "task.max_eval_samples=6",
                                    "task.max_new_tokens=4"), progress=False)
    assert record.status == "ok", record.error
    m, items = record.metrics, record.items["quality"]
    assert m["n_eval"] == len(items) == 6 and m["quality_items_metric"] == "rougeL"
    assert sum(items) / len(items) == pytest.approx(m["rougeL"], abs=1e-3)
    assert m["quality_ci_low"] <= m["quality"] <= m["quality_ci_high"]


def test_bootstrap_interval_is_seeded_and_holds_the_mean():
    items = [0.1, 0.5, 0.3, 0.9, 0.0, 0.4, 0.7, 0.2]
    low, high = metrics.interval("rougeL", "rougeL", items)
    assert (low, high) == metrics.interval("rougeL", "rougeL", items)
    assert low < sum(items) / len(items) < high
    assert metrics.interval("f1_macro", "accuracy", [1, 0, 1]) == (None, None)  # no labels to resample: n/a


def test_a_macro_f1_task_gets_its_interval_from_resampled_labels():
    references = [0, 1, 2, 0, 1, 2, 0, 1, 2, 2] * 10
    predictions = [0, 1, 2, 0, 1, 1, 0, 2, 2, 2] * 10
    result = metrics.scored("classification", ["accuracy", "f1_macro"], "f1_macro", predictions, references)
    assert result["quality_ci_low"] < result["f1_macro"] < result["quality_ci_high"]
    assert result["n_eval"] == 100 and result["quality_items_metric"] == "accuracy"  # paired items stay 1/0


@pytest.mark.parametrize("override, key", [("train.eval_every=0", "train.eval_every"),
                                           ("train.lr_scale=0", "train.lr_scale")])
def test_bad_eval_settings_name_the_key(override, key):
    with pytest.raises(ConfigError, match=f"`{key}`"):
        trial_config(override)


def test_lr_search_scores_validation_and_scales_each_methods_rate():
    preset = OmegaConf.load(CONF_DIR / "sweep" / "lr-search.yaml")
    assert set(str(preset.hydra.sweeper.params["train.lr_scale"]).split(",")) == {"0.3", "1", "3", "10"}
    raw = compose_raw("sweep=lr-search", "method=full", "train.max_steps=7", "train.lr_scale=3")
    assert raw["train"]["eval_every"] == 7  # one validation checkpoint, after the last step
    cfg = trial_config("sweep=lr-search", "method=full", "train.lr_scale=3")
    assert cfg.learning_rate == pytest.approx(3 * cfg.method.learning_rate)
    assert raw["task"]["max_eval_samples"] == 32  # the test split is never read to choose: scored on a few items
    assert raw["task"]["max_val_samples"] == compose_raw("method=full")["task"]["max_val_samples"]  # validation: whole


def _fake_trial(folder: Path, method: str, rate: float, val: float, test: float, seed: int = 0) -> None:
    identity = {"method": method, "family": "x", "model": "m", "task": "t", "seed": seed}
    val_items = [1] * round(100 * val) + [0] * (100 - round(100 * val))
    record = records.TrialRecord(status="ok", config={"learning_rate": rate}, key=f"{method}{rate}{seed}",
                                 identity=identity, metrics={"quality": test, "val_quality": val, "n_val": 100},
                                 items={"val_quality": val_items, "quality": []})
    records.write(record, folder / f"{method}-{rate}-{seed}")


def test_choose_lr_selects_on_validation_never_on_test(tmp_path, capsys):
    # Test quality ranks the rates the other way round: a choice made on it would pick 1e-4.
    for rate, val, test in [(1e-4, 0.50, 0.99), (3e-4, 0.90, 0.60), (1e-3, 0.70, 0.80)]:
        _fake_trial(tmp_path, "lora", rate, val, test)
    for rate, val, test in [(1e-5, 0.80, 0.10), (3e-5, 0.81, 0.90)]:
        _fake_trial(tmp_path, "full", rate, val, test)
    chosen = {c.method: c for c in choose_lr.choose(tmp_path)}
    assert chosen["lora"].rate == 3e-4 and chosen["lora"].tied == [3e-4] and not chosen["lora"].at_edge
    # 81 vs 80 of 100 validation items: not separable, so the lower rate
    assert chosen["full"].rate == 1e-5 and chosen["full"].at_edge and chosen["full"].tied == [1e-5, 3e-5]
    assert choose_lr.main([str(tmp_path)]) == 0
    assert "lora: learning_rate 0.0003" in capsys.readouterr().out
    assert not chosen["lora"].beside_a_failure  # 1e-3 fell to 0.70 of 0.90: worse, not failed


def test_choose_lr_flags_a_one_seed_choice_just_below_a_rate_that_failed(tmp_path):
    for rate, val in [(3e-3, 0.93), (1e-2, 0.97), (3e-2, 0.18)]:
        _fake_trial(tmp_path, "adapter", rate, val, 0.5)
    (chosen,) = choose_lr.choose(tmp_path)
    assert chosen.rate == 1e-2 and chosen.beside_a_failure and not chosen.confirmed
    assert "UNCONFIRMED" in chosen.line() and choose_lr.main([str(tmp_path)]) == 3
    for seed in (1, 2):  # two more seeds where 1e-2 held, clearly above 3e-3: confirmed
        for rate, val in [(3e-3, 0.93), (1e-2, 0.99), (3e-2, 0.2)]:
            _fake_trial(tmp_path, "adapter", rate, val, 0.5, seed=seed)
    (chosen,) = choose_lr.choose(tmp_path)
    assert chosen.seeds == 3 and chosen.beside_a_failure and chosen.confirmed and "UNCONFIRMED" not in chosen.line()


def test_choose_lr_compares_rates_on_the_same_seeds_and_reads_one_rate_however_it_was_written(tmp_path):
    """A confirmation run gives two candidates seeds 1 and 2: the choice is between them, on three seeds each, not
    against a rate's single lucky seed; and 3 x 3e-3 (0.009000000000000001) is the rate 9e-3."""
    for rate, val in [(3e-3, 0.93), (3 * 3e-3, 0.96), (3e-2, 0.97)]:
        _fake_trial(tmp_path, "lora", rate, val, 0.5)
    for seed, (low, high) in ((1, (0.94, 0.60)), (2, (0.95, 0.70))):
        _fake_trial(tmp_path, "lora", 3e-3, low, 0.5, seed=seed)
        _fake_trial(tmp_path, "lora", 9e-3, high, 0.5, seed=seed)
    (chosen,) = choose_lr.choose(tmp_path)
    assert set(chosen.grid) == {3e-3, 9e-3, 3e-2}
    assert chosen.rate == 3e-3 and chosen.seeds == 3  # 3e-2 had the best single seed, 9e-3 failed on two of three


def test_checkpoints_of_a_dataset_without_validation_score_rows_carved_from_train_never_test():
    own = Path(__file__).parent.parent / "examples" / "own-data"  # train.csv and test.csv: no validation split
    cfg = trial_config("model=tiny-bert", "task=files", f"task.dataset.data_files.train={own}/train.csv",
                       f"task.dataset.data_files.test={own}/test.csv", "train.eval_every=2")
    validation = curve.validation_rows(cfg.task, Path(cfg.cache_dir).expanduser())
    test_texts = {row["text"] for row in tasks.raw_splits(cfg.task)["test"]}
    assert validation and not {row["text"] for row in validation} & test_texts
    record = run_trial(cfg, progress=False)
    assert record.status == "ok", record.error
    assert record.metrics["n_val"] == len(validation) != record.metrics["n_eval"]
