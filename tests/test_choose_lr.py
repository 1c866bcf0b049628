"""choose_lr picks the lowest rate validation cannot separate from the best, and never a rate directly below one
that failed until two more seeds confirm it: pytest tests/test_choose_lr.py
"""

from __future__ import annotations

from pathlib import Path

from bench.results import record as records
from bench.results import choose_lr
from tests.conftest import trial_config


def trial(folder: Path, rate: float, val: float | None, seed: int = 0) -> None:
    """One lr-search trial of lora on 100 validation items; val None: the trial failed (no score)."""
    identity = {"method": "lora", "family": "x", "model": "m", "task": "t", "seed": seed}
    if val is None:
        record = records.TrialRecord(status="failed", config={"learning_rate": rate}, key=f"{rate}{seed}",
                                     identity=identity, error={"type": "FloatingPointError", "message": "NaN loss",
                                                               "phase": "train"})
    else:
        items = [1] * round(100 * val) + [0] * (100 - round(100 * val))
        record = records.TrialRecord(status="ok", config={"learning_rate": rate}, key=f"{rate}{seed}",
                                     identity=identity, metrics={"quality": 0.5, "val_quality": val, "n_val": 100},
                                     items={"val_quality": items})
    records.write(record, folder / f"lora-{rate}-{seed}")


def test_the_lowest_of_the_rates_validation_cannot_separate(tmp_path):
    for rate, val in [(1e-4, 0.60), (3e-4, 0.90), (1e-3, 0.91), (3e-3, 0.92)]:
        trial(tmp_path, rate, val)
    (chosen,) = choose_lr.choose(tmp_path)
    assert chosen.tied == [3e-4, 1e-3, 3e-3] and chosen.rate == 3e-4 and chosen.confirmed
    assert "the lowest of the rates validation cannot separate (also 0.001, 0.003)" in chosen.line()


def test_a_rate_directly_below_a_failed_trial_needs_two_more_seeds(tmp_path, capsys):
    for rate, val in [(1e-4, 0.50), (3e-4, 0.95), (1e-3, None)]:
        trial(tmp_path, rate, val)
    (chosen,) = choose_lr.choose(tmp_path)
    assert chosen.rate == 3e-4 and chosen.failed == {1e-3} and chosen.beside_a_failure and not chosen.confirmed
    assert choose_lr.main([str(tmp_path)]) == 3 and "UNCONFIRMED" in capsys.readouterr().out
    trial(tmp_path, 3e-4, 0.94, seed=1)
    trial(tmp_path, 3e-4, 0.30, seed=2)  # collapsed on the third seed: still not confirmed
    assert not choose_lr.choose(tmp_path)[0].confirmed
    trial(tmp_path, 3e-4, 0.93, seed=2)  # rerun: held on three seeds
    (chosen,) = choose_lr.choose(tmp_path)
    assert chosen.seeds == 3 and chosen.confirmed and choose_lr.main([str(tmp_path)]) == 0


RULE = "the lowest rate validation accuracy cannot separate from the best"
STUDY_METHODS = ("full", "lora", "dora", "ia3", "bitfit", "adapter-houlsby", "prefix-tuning", "prompt-tuning")


def test_every_rate_a_method_yaml_says_was_chosen_is_the_one_choose_lr_picks_from_the_committed_search():
    """The rates the study trains with are the committed search's choices, per model: a YAML that says its rate was
    chosen by the rule holds choose_lr's confirmed pick for minilm-l6 (`learning_rate`) and, where the decoder's was
    searched, for smollm2-135m (`learning_rate_by_model`)."""
    root = Path(__file__).parent.parent
    picks = {(c.model, c.method): c for c in choose_lr.choose(root / "results" / "lr-search") if c.task == "bbc-topic"}
    claimed = [p.stem for p in sorted((root / "conf" / "method").glob("*.yaml")) if RULE in p.read_text()]
    assert set(STUDY_METHODS) <= set(claimed)
    for method in claimed:
        for model in ("minilm-l6", "smollm2-135m"):
            pick = picks.get((model, method))
            if pick is None:
                continue
            cfg = trial_config(f"method={method}", f"model={model}")
            assert pick.confirmed, pick.line()
            assert abs(cfg.learning_rate - pick.rate) <= 1e-9 * pick.rate, (method, model, cfg.learning_rate, pick.rate)
