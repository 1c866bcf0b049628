"""choose_lr picks the lowest rate validation cannot separate from the best, and never a rate directly below one
that failed until two more seeds confirm it: pytest tests/test_choose_lr.py
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.results import record as records
from bench.config import params_in_key
from bench.results import choose_lr
from bench.results.write_rates import RULE
from tests.conftest import trial_config


def trial(folder: Path, rate: float, val: float | None, seed: int = 0, method: str = "lora",
          params: dict | None = None) -> None:
    """One lr-search trial of lora on 100 validation items; val None: the trial failed (no score)."""
    identity = {"method": method, "family": "x", "model": "m", "task": "t", "seed": seed}
    config = {"learning_rate": rate, "method": {"name": method, "params": params or {}}}
    name = f"{method}-{rate}-{seed}-{'-'.join(map(str, (params or {}).values()))}"
    if val is None:
        record = records.TrialRecord(status="failed", config=config, key=name,
                                     identity=identity, error={"type": "FloatingPointError", "message": "NaN loss",
                                                               "phase": "train"})
    else:
        items = [1] * round(100 * val) + [0] * (100 - round(100 * val))
        record = records.TrialRecord(status="ok", config=config, key=name,
                                     identity=identity, metrics={"quality": 0.5, "val_quality": val, "n_val": 100},
                                     items={"val_quality": items})
    records.write(record, folder / name)


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


def test_a_search_at_other_params_is_another_choice_named_by_what_differs(tmp_path):
    """Prefix tuning searched from peft's random start (recorded before `init` existed) and from a text: two
    choices; the trials without the field are the random start's."""
    for rate, val in [(1e-3, 0.30), (3e-3, 0.31)]:
        trial(tmp_path, rate, val, method="prefix-tuning", params={"num_virtual_tokens": 20})
    for rate, val in [(1e-3, 0.70), (3e-3, 0.86)]:
        trial(tmp_path, rate, val, method="prefix-tuning", params={"num_virtual_tokens": 20, "init": "text"})
    trial(tmp_path, 1e-2, None, method="prefix-tuning", params={"num_virtual_tokens": 20, "init": "text"})
    random, text = sorted(choose_lr.choose(tmp_path), key=lambda c: c.variant)
    assert (random.variant, text.variant) == ("init=random", "init=text")
    assert len(random.grid) == len(text.grid) == 2 and random.failed == set() and text.failed == {1e-2}
    assert text.rate == 3e-3 and "prefix-tuning [init=text]: learning_rate 0.003" in text.line()


STUDY_METHODS = ("full", "lora", "dora", "ia3", "bitfit", "adapter-houlsby", "prefix-tuning", "prompt-tuning")
DECODER_ONLY = ("adaption-prompt", "shadow")  # searched on smollm2-135m alone: minilm-l6 is an encoder


def test_every_rate_a_method_yaml_says_was_chosen_is_the_one_choose_lr_picks_from_the_committed_search():
    """The rates the study trains with are the committed search's choices, per model: a YAML that says its rate was
    chosen by the rule holds choose_lr's confirmed pick for minilm-l6 (`learning_rate`) and, where the decoder's was
    searched, for smollm2-135m (`learning_rate_by_model`)."""
    root = Path(__file__).parent.parent
    picks = {(c.model, c.method, c.params): c for c in choose_lr.choose(root / "results" / "lr-search")
             if c.task == "bbc-topic"}
    claimed = [p.stem for p in sorted((root / "conf" / "method").glob("*.yaml")) if RULE in p.read_text()]
    assert set(STUDY_METHODS) <= set(claimed)
    for method in claimed:
        for model in ("minilm-l6", "smollm2-135m"):
            cfg = trial_config(f"method={method}", f"model={model}")  # the params it runs with there, too
            pick = picks.get((model, method, json.dumps(params_in_key(method, cfg.method.params), sort_keys=True)))
            yaml = (root / "conf" / "method" / f"{method}.yaml").read_text()
            # what each record will say of its rate: chosen for its model exactly where the search chose it
            assert cfg.learning_rate_chosen_for_model is (pick is not None), (method, model, "learning_rate_chosen_on")
            if pick is None:  # every rate the YAML holds for a model comes from a search at the params it runs with
                assert (model != "minilm-l6" or method in DECODER_ONLY) and f"{model}:" not in yaml, (
                    method, model, "no search at its params")
                continue
            assert pick.confirmed, pick.line()
            assert abs(cfg.learning_rate - pick.rate) <= 1e-9 * pick.rate, (method, model, cfg.learning_rate, pick.rate)
