"""Generation scores what was trained: every method family's greedy headlines move away from the base model's after
a few steps, seeds differ, and a generation path that drops the method is caught by the first-token check.

pytest tests/test_generation_check.py
"""

from __future__ import annotations

import copy
import json

import pytest
import torch

from bench import methods, tasks, trial
from bench.results import record as records
from bench.tasks import generation, greedy
from bench.launch.trial import run_trial
from tests.conftest import trial_config

FAMILIES = ["prefix-tuning", "prompt-tuning", "p-tuning", "adapter-houlsby", "ia3", "lora", "lora-merged"]
PROMPTS = 6
NEW_TOKENS = 6
ATTENTION_SCALE = 20  # makes the tiny model's next token depend on its context (attention), as a real model's does


@pytest.fixture(scope="module")
def headline_base():
    cfg = trial_config("model=tiny-llama", "task=bbc-headline")
    base = trial.load_base(cfg)
    with torch.no_grad():  # at the random init's scale every prompt's next token is the same (42), soft prompt or not
        for name, weight in base.model.named_parameters():
            if name.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight")):
                weight.mul_(ATTENTION_SCALE)
    budget = cfg.train.max_length - cfg.task.max_new_tokens
    prompts = [generation.prompt_ids(r["text"], base.tokenizer, cfg.task.prompt_template, budget)
               for r in base.data.test_rows[:PROMPTS]]
    return cfg, base, prompts


def _trained(base, name: str, seed: int, steps: int = 4, lr: float = 0.05):
    """The base model with `name` applied and trained a few steps at a high rate (seed: initialisation and batches)."""
    torch.manual_seed(seed)
    method = methods.get(name.removesuffix("-merged"))
    model = method.apply(copy.deepcopy(base.model), method.build_config({}), base.arch)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    collate = tasks.collator("generation", base.tokenizer)
    order = torch.randperm(len(base.data.train), generator=torch.Generator().manual_seed(seed)).tolist()
    for step in range(steps):
        rows = [base.data.train[i] for i in order[step * 4:(step + 1) * 4]]
        loss = model(**collate(rows)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    return model.merge_and_unload() if name.endswith("-merged") else model


def _generate(model, base, prompts):
    with torch.inference_mode():
        return generation.generate(model, base.tokenizer, prompts, "decoder", NEW_TOKENS, 4, base.device)


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_generates_its_own_tokens_and_passes_the_check(headline_base, name):
    _, base, prompts = headline_base
    base_tokens = _generate(base.model, base, prompts)
    seeded = {}
    for seed in (0, 1):
        model = _trained(base, name, seed)
        seeded[seed] = _generate(model, base, prompts)
        with torch.inference_mode():
            check = generation.first_token_check(model, prompts, seeded[seed], "decoder", base.device)
        assert check == {"generation_check": "ok", "quality_na_reason": None}
    assert seeded[0] != base_tokens and seeded[1] != base_tokens  # the method reaches what is generated
    assert seeded[0] != seeded[1]  # and what it learned differs between seeds


def test_a_generate_that_drops_the_method_is_caught_and_scores_nothing(headline_base, monkeypatch):
    cfg, base, _ = headline_base
    model = _trained(base, "prefix-tuning", 0)
    honest = greedy.greedy

    def without_prefix(model, *args, **kwargs):  # what peft's generate did: the base model's tokens
        with model.disable_adapter():
            return honest(model.get_base_model(), *args, **kwargs)

    data = copy.copy(base.data)
    data.test_rows = base.data.test_rows[:PROMPTS]
    scored = tasks.evaluate(data, model, base.tokenizer, "decoder", 4, cfg.train.max_length, base.device)
    assert scored["generation_check"] == "ok" and scored["rougeL"] is not None
    monkeypatch.setattr(greedy, "greedy", without_prefix)
    broken = tasks.evaluate(data, model, base.tokenizer, "decoder", 4, cfg.train.max_length, base.device)
    assert broken["generation_check"] == "mismatch"
    assert "not the argmax" in broken["quality_na_reason"]
    assert broken["rougeL"] is None and broken["quality_ci_low"] is None and broken["items"] == []
    assert len(broken["generated"]) == PROMPTS  # the text stays auditable


def test_a_generation_trial_keeps_each_items_text_and_its_check(tmp_path):
    record = run_trial(trial_config("model=tiny-llama", "task=bbc-headline", "method=prefix-tuning"), progress=False)
    assert record.status == "ok", record.error
    assert record.metrics["generation_check"] == "ok" and record.metrics["quality_na_reason"] is None
    assert "generated" not in record.metrics
    assert record.metrics["ttft_ms_p50"] > 0 and record.metrics["decode_ms_per_token_p50"] > 0  # decode timed
    assert "ttft_ms_p50_merged" not in record.metrics  # prefix tuning does not merge
    records.write(record, tmp_path)
    items = json.loads((tmp_path / records.ITEMS_NAME).read_text())
    assert len(items["generated"]) == len(items["quality"]) == record.metrics["n_eval"]
    assert all(isinstance(text, str) for text in items["generated"])
