"""Forgetting probes: one protocol, the model probed as it serves (soft prompts included), the base LM head of tied
and untied decoders, enough items, per-item scores with a paired interval, and a cache key that holds what changes
the base score.

pytest tests/test_probes.py
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import peft
import pytest
import torch

from bench import models, probes, trial
from bench.probes import base as base_scores
from bench.probes import forgetting
from bench.probes.perplexity import PerplexityProbe
from bench.probes.retrieval import RetrievalProbe
from bench.probes.text import general_text_windows, paragraph_pairs
from bench.launch.trial import run_trial
from bench.trial.measuring import probe_forgetting
from tests.conftest import trial_config


@pytest.fixture(scope="module")
def llama_base():
    return trial.load_base(trial_config("model=tiny-llama", "task=bbc-headline"))


def test_both_probes_follow_the_protocol(llama_base):
    bert = trial.load_base(trial_config("model=tiny-bert"))
    for base in (llama_base, bert):
        probe = trial.make_probe(trial_config(), base)
        assert isinstance(probe, probes.Probe)  # prepare, measure, score, cache_identity, name, direction
        scored = probe.measure(base.model)
        assert len(scored.items) == 8 and scored.value == probe.score(base.model)


def test_pydoc_text_gives_at_least_256_windows_and_pairs(llama_base):
    windows = general_text_windows(llama_base.tokenizer, 256, trial_config(fast=False).train.probe_max_length)
    assert len(windows) == 256 and {len(w) for w in windows} == {64}
    assert len({tuple(w) for w in windows}) == 256  # no window twice
    assert len(paragraph_pairs(256)) == 256


@pytest.mark.parametrize("task", ["bbc-headline", "bbc-topic"])
def test_a_soft_prompt_is_active_when_probed(task):
    """Prompt tuning leaves the body bit-identical; the probe must still see the prompt (the model as it serves),
    so an untrained random prompt already changes the score. Reading the body around it gave forgetting 0.000."""
    cfg = trial_config("model=tiny-llama", f"task={task}")
    base = trial.load_base(cfg)
    probe = trial.make_probe(cfg, base)
    before = probe.measure(base.model)
    task_type = "CAUSAL_LM" if task == "bbc-headline" else "SEQ_CLS"
    prompted = peft.get_peft_model(base.model, peft.PromptTuningConfig(task_type=task_type, num_virtual_tokens=8))
    after = probe.measure(prompted)
    assert len(after.items) == len(before.items)
    assert after.value != pytest.approx(before.value, rel=1e-6)


def test_a_soft_prompt_is_active_in_the_retrieval_probe():
    bert = trial.load_base(trial_config("model=tiny-bert"))
    probe = trial.make_probe(trial_config(), bert)
    texts = [q for q, _ in probe.pairs]
    plain = probe._embed(bert.model, texts)
    config = peft.PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=8)
    prompted = peft.get_peft_model(bert.model, config)
    with torch.inference_mode():
        assert not torch.allclose(probe._embed(prompted, texts), plain)


def test_prompt_tuned_classification_decoder_forgets_measurably():
    record = run_trial(trial_config("model=tiny-llama", "method=prompt-tuning"), progress=False)
    assert record.status == "ok", record.error
    m = record.metrics
    assert m["forgetting"] is not None and m["forgetting"] != 0.0  # was exactly 0.000 by construction


@pytest.mark.parametrize("model", ["tiny-llama", "tiny-llama-untied"])
def test_a_classification_decoder_is_probed_through_the_base_lm_head(model):
    """Tied (SmolLM2) or untied (Llama 3): the classifier's body read through the LM head of the base checkpoint
    scores what the causal LM itself scores."""
    extra = ["model.arch=llama-untied", "model.name=tiny-llama-untied"] if model.endswith("untied") else []
    cfg = trial_config("model=tiny-llama", *extra)
    classifier = trial.load_base(cfg)
    probe = trial.make_probe(cfg, classifier)
    assert probe.uses_base_head
    causal = trial.load_base(trial_config("model=tiny-llama", "task=bbc-headline", *extra))
    own_head = trial.make_probe(cfg, causal)
    assert not own_head.uses_base_head
    assert probe.score(classifier.model) == pytest.approx(own_head.score(causal.model), rel=1e-5)
    if extra:
        config = classifier.model.config
        assert not config.tie_word_embeddings
        head = models.lm_head_weight(cfg.model, Path(cfg.cache_dir).expanduser())
        assert not torch.equal(head, classifier.model.get_input_embeddings().weight)


def test_the_forgetting_interval_is_paired_seeded_and_contains_the_estimate():
    before = [0.0] * 100 + [1.0] * 156  # recall@1 items: 0.609 before
    after = [0.0] * 130 + [1.0] * 126  # 0.492 after; the same items lost their hit
    low, high = forgetting.interval(before, after, None, higher_is_better=True)
    estimate = probes.relative_loss(sum(before) / 256, sum(after) / 256, True)
    assert low < estimate < high and 0 < low
    assert (low, high) == forgetting.interval(before, after, None, higher_is_better=True)  # seeded
    assert forgetting.interval(before, before, None, True) == (0.0, 0.0)  # paired: no change, no spread


def test_perplexity_interval_pools_token_weighted_nll():
    nll_before = [math.log(30)] * 50 + [math.log(40)] * 50
    nll_after = [x + 0.1 for x in nll_before]  # every text worse by the same factor e^0.1
    low, high = forgetting.interval(nll_before, nll_after, [63] * 100, higher_is_better=False)
    assert low == pytest.approx(math.exp(0.1) - 1) and high == pytest.approx(math.exp(0.1) - 1)


def test_the_base_score_cache_key_holds_python_version_and_split_fractions(monkeypatch):
    decoder = trial_config("model=tiny-llama")
    encoder = trial_config("model=tiny-bert")
    keys = {base_scores.path(decoder, "decoder"), base_scores.path(encoder, "encoder")}
    other_split = dataclasses.replace(encoder, task=dataclasses.replace(encoder.task, test_fraction=0.3))
    keys.add(base_scores.path(other_split, "encoder"))
    other_task = dataclasses.replace(decoder, task=dataclasses.replace(decoder.task, name="bbc-headline"))
    assert base_scores.path(other_task, "decoder") == base_scores.path(decoder, "decoder")  # general text: no task
    monkeypatch.setattr(base_scores.platform, "python_version", lambda: "3.99.0")  # other pydoc topics
    keys |= {base_scores.path(decoder, "decoder"), base_scores.path(encoder, "encoder")}
    assert len(keys) == 5


def test_retrieval_cache_identity_names_its_pairs():
    tokenizer = None
    one = RetrievalProbe(tokenizer, [("a", "b")], 32, 8, "cpu").cache_identity()
    other = RetrievalProbe(tokenizer, [("a", "c")], 32, 8, "cpu").cache_identity()
    assert one != other


def test_perplexity_probe_without_a_head_for_a_classifier_says_so(llama_base):
    probe = PerplexityProbe(llama_base.tokenizer, 4, 32, 8, "cpu", lm_head=None)
    classifier = trial.load_base(trial_config("model=tiny-llama")).model
    with pytest.raises(NotImplementedError, match="base LM head"):
        probe.prepare(classifier)


def test_a_model_the_probe_cannot_see_is_na_not_zero(llama_base):
    """A forward pass that goes around the transformer body: the probe says so, and the trial records n/a."""
    probe = trial.make_probe(trial_config(), llama_base)

    class AroundTheBody(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.base_model = inner.model  # what probes.backbone finds

        def get_output_embeddings(self):
            return None

        def forward(self, input_ids, attention_mask=None):
            return None

    probe.uses_base_head = True
    probe.lm_head = lambda: torch.zeros(1, 1)
    with pytest.raises(probes.BodyNotCalled):
        probe.measure(AroundTheBody(llama_base.model))
    found = probe_forgetting(probe, {"score": 10.0, "items": [1.0] * 8}, AroundTheBody(llama_base.model))
    assert found.figures["forgetting"] is None and "probe_error" in found.figures and not found.items


def test_probe_windows_start_as_the_tokenizer_starts_a_text(llama_base):
    """Gemma's tokenizer adds BOS and Gemma reads perplexity 993 without it, 59 with it: a window without the BOS
    the model always saw measures how it copes with the missing token, not what it knows."""
    from transformers import AutoTokenizer

    with_bos = AutoTokenizer.from_pretrained(llama_base.tokenizer.name_or_path, add_bos_token=True)
    assert with_bos("a").input_ids[0] == with_bos.bos_token_id  # the tokenizer starts a text with BOS
    windows = general_text_windows(with_bos, 8, 16)
    assert len(windows) == 8 and all(len(w) == 16 and w[0] == with_bos.bos_token_id for w in windows)
    plain = general_text_windows(llama_base.tokenizer, 8, 16)  # SmolLM2's tokenizer adds no BOS: none is put in
    assert all(w[0] != with_bos.bos_token_id for w in plain)
    assert windows[0][1:] == plain[0][:15]  # the text follows the BOS
    probe = PerplexityProbe(with_bos, 8, 16, 4, "cpu")
    assert probe.encoded[:, 0].eq(with_bos.bos_token_id).all()
