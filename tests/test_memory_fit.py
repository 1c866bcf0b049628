"""The memory fit recovers the breakdown it is given, scales to bf16 / 4-bit as stated, reports its error on the
measured trials (in-sample and with the model held out), and the report labels it a prediction.

.venv/bin/python -m pytest -q tests/test_memory_fit.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.report import memory_fit
from bench.report.memory_fit import ARCHS, BATCH, LENGTH, NF4_BITS_PER_PARAM, fit, predict

STUDY = Path(__file__).parent.parent / "results" / "tradeoffs-3seed"  # a committed study that stays as it is


def synthetic(coef: dict, method: str = "lora", precision: str = "fp32") -> pd.DataFrame:
    """Trials whose breakdown follows `coef` exactly, on two models and a classification and an LM task."""
    rows = []
    for model, task, metric, tokens in (("minilm-l6", "bbc-topic", "accuracy", 2048),
                                        ("smollm2-135m", "bbc-topic", "accuracy", 512),
                                        ("smollm2-135m", "bbc-headline", "rougeL", 512)):
        arch = ARCHS[model]
        trainable = arch.params if method == "full" else 0.003 * arch.params
        vocab = arch.vocab if metric.startswith("rouge") else 0
        parts = {"mem_weights_bytes": coef["w"] * arch.params, "mem_grads_bytes": coef["g"] * trainable,
                 "mem_optimizer_bytes": coef["o"] * trainable,
                 "mem_activations_bytes": tokens * (coef["lh"] * arch.layers * arch.hidden + coef["v"] * vocab),
                 "mem_other_bytes": coef["other"]}
        rows.append({"method": method, "model": model, "task": task, "status": "ok", "precision": precision,
                     "quality_metric": metric, "total_params": arch.params, "trainable_params": trainable,
                     "train_steps": 10, "train_padded_tokens": 10 * tokens, **parts,
                     "peak_mem_bytes": sum(parts.values())})
    return pd.DataFrame(rows)


@pytest.fixture
def coef():
    rng = np.random.default_rng(7)
    return {"w": 4.0, "g": 4.0, "o": 8.0, "lh": float(rng.uniform(20, 120)), "v": float(rng.uniform(1, 10)),
            "other": float(rng.uniform(2e8, 6e8))}


def test_the_fit_recovers_the_breakdown_it_was_made_from(coef):
    [(method, found)] = fit(synthetic(coef)).items()
    assert method == "lora"
    assert found.act_per_token_layer_hidden == pytest.approx(coef["lh"], rel=1e-6)
    assert found.act_per_token_vocab == pytest.approx(coef["v"], rel=1e-6)
    assert found.optimizer_per_trainable == pytest.approx(coef["o"])
    assert found.points["error"].abs().max() < 1e-6
    held_out = found.points.set_index(["model", "task"])["held_out_error"]
    assert abs(held_out["minilm-l6", "bbc-topic"]) < 1e-6  # exact data: learnt from smollm2 alone, still exact
    assert held_out["smollm2-135m", "bbc-headline"] < -1e-3  # no LM-loss trial left to learn the vocabulary term


def test_a_model_the_fit_did_not_see_shows_its_error(coef):
    trials = synthetic(coef)
    trials.loc[trials["model"] == "minilm-l6", "mem_activations_bytes"] *= 2  # an encoder that keeps more per token
    trials["peak_mem_bytes"] = trials[list(memory_fit.BREAKDOWN)].sum(axis=1)
    points = fit(trials)["lora"].points.set_index("model")
    assert points.loc["minilm-l6", "held_out_error"] < -0.05  # learnt from smollm2 only: underpredicts
    assert abs(points.loc["minilm-l6", "error"]) > 1e-3  # and the in-sample fit no longer matches every trial


def test_predictions_scale_to_bf16_and_4_bit_as_stated(coef):
    fits = fit(pd.concat([synthetic(coef, "full"), synthetic(coef, "lora")]))
    arch = ARCHS["Llama-2-7B"]
    full, lora, qlora = (predict(fits, "Llama-2-7B", m) for m in ("full", "lora", "qlora"))
    assert full["weights"] == pytest.approx(arch.params * 2)  # 4 bytes measured in fp32 -> 2 in bf16
    assert full["optimizer"] == pytest.approx(arch.params * coef["o"])  # AdamW's moments stay fp32
    embeddings = arch.vocab * arch.hidden * 2
    base = (arch.params - embeddings) * NF4_BITS_PER_PARAM / 8 + embeddings * 2
    assert qlora["weights"] == pytest.approx(base + 4 * qlora["trainable_params"])
    assert qlora["total"] < lora["total"] < full["total"]
    tokens = BATCH * LENGTH
    activations = (coef["lh"] * arch.layers * arch.hidden + coef["v"] * arch.vocab) * tokens / 2
    assert lora["activations"] == pytest.approx(activations)
    assert predict(fits, "Llama-2-7B", "lora", batch=2 * BATCH)["activations"] == pytest.approx(2 * activations)


def test_no_prediction_without_the_method_it_builds_on(coef):
    fits = fit(synthetic(coef, "full"))
    assert predict(fits, "Llama-2-7B", "qlora") is None and predict(fits, "Llama-2-7B", "full") is not None
    assert fit(synthetic(coef).assign(model="tiny-llama")) == {}  # no architecture known: nothing fitted


def test_the_report_section_is_labelled_a_prediction(coef):
    blocks, tables = [], []
    memory_fit.add_section(pd.concat([synthetic(coef, "full"), synthetic(coef, "lora")]), blocks, tables.append)
    assert any(b.kind == "text" and "A prediction, not a measurement" in b.content for b in blocks)
    assert [t.name for t in tables] == ["memory_fit_error", "memory_prediction", "memory_published"]
    predicted = tables[1].frame
    assert set(predicted["model"]) == set(memory_fit.TARGETS) and set(predicted["method"]) == {"full", "lora", "qlora"}
    assert tables[2].frame["predicted_bytes"].notna().all()
    empty = []
    memory_fit.add_section(synthetic(coef, "ia3"), empty, tables.append)
    assert empty == []  # nothing to build full, LoRA or QLoRA on


@pytest.mark.skipif(not (STUDY / "trials.csv").exists(), reason="the committed study is not in this checkout")
def test_the_committed_study_gives_each_method_a_held_out_error():
    from bench.report.load import load_trials, read_table

    errors = memory_fit.error_frame(fit(load_trials(STUDY, read_table(STUDY))))
    assert {"full", "lora"} <= set(errors["method"])
    on_two_models = errors.groupby("method")["model"].transform("nunique") >= 2  # BitFit ran on minilm-l6 only
    assert errors.loc[on_two_models, "held_out_error_mean"].notna().all()
    assert errors.loc[~on_two_models, "held_out_error_mean"].isna().all()  # n/a, never a made-up figure
