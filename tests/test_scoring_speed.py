"""Faster scoring, same figures: length-sorted classification batches, the cached greedy loop and the probe's
copy-free negative log-likelihood give what the plain computations give, item by item.

pytest tests/test_scoring_speed.py
"""

from __future__ import annotations

import contextlib
import copy
import math

import peft
import pytest
import torch
import torch.nn.functional as F

from bench import methods, trial
from bench.probes import body_output, real_positions
from bench.tasks import classification, generation
from tests.conftest import trial_config

LONG = "train.max_length=256"  # room for articles of different lengths, so sorting reorders the batches


def _perturbed(model, name: str, arch, seed: int = 0):
    """`name` applied with its trainable weights moved well off their initialisation (what training does)."""
    torch.manual_seed(seed)
    method = methods.get(name)
    model = method.apply(copy.deepcopy(model), method.build_config({}), arch)
    with torch.no_grad():
        for weight in model.parameters():
            if weight.requires_grad:
                weight.add_(torch.randn_like(weight) * 0.5)
    return model.eval()


@pytest.mark.parametrize("model_name", ["tiny-bert", "tiny-llama"])
def test_sorted_classification_batches_predict_what_one_text_at_a_time_predicts(model_name):
    cfg = trial_config(f"model={model_name}", "task=bbc-topic", LONG)
    base = trial.load_base(cfg)
    texts = [r["text"][: 40 * (1 + i % 7)] for i, r in enumerate(base.data.test_rows[:24])]  # lengths vary
    assert len({len(base.tokenizer(t).input_ids) for t in texts}) > 3
    with torch.inference_mode():
        sorted_batches = classification.predict(base.model.eval(), base.tokenizer, texts, 8, 256, base.device)
        one_by_one = [base.model(**base.tokenizer([t], return_tensors="pt")).logits.argmax(-1).item() for t in texts]
    assert sorted_batches == one_by_one


def _greedy_without_cache(model, prompt: list[int], new_tokens: int) -> list[int]:
    """Greedy by definition: the whole sequence through the model's own forward for every token."""
    ids = torch.tensor([prompt])
    for _ in range(new_tokens):
        ids = torch.cat([ids, model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -1:].argmax(-1)], 1)
    return ids[0, len(prompt):].tolist()


@pytest.mark.parametrize("name", [None, "lora", "prefix-tuning", "prompt-tuning"])
def test_cached_batched_greedy_decoding_matches_greedy_by_definition(name):
    cfg = trial_config("model=tiny-llama", "task=bbc-headline")
    base = trial.load_base(cfg)
    with torch.no_grad():  # attention that matters (see test_generation_check): positions and prefix must be right
        for weight_name, weight in base.model.named_parameters():
            if weight_name.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight")):
                weight.mul_(20)
    model = _perturbed(base.model, name, base.arch) if name else base.model.eval()
    prompts = [generation.prompt_ids(r["text"], base.tokenizer, cfg.task.prompt_template, 6 + 3 * i)
               for i, r in enumerate(base.data.test_rows[:5])]  # five lengths: left padding in every batch
    with torch.inference_mode():
        batched = generation.generate(model, base.tokenizer, prompts, "decoder", 5, 3, base.device)
        plain = [_greedy_without_cache(model, p, 5) for p in prompts]
    eos = base.tokenizer.eos_token_id
    plain = [p[: p.index(eos) + 1] if eos in p else p for p in plain]
    ended = [b if b[-1:] != [eos] or b == p else b[:-1] for b, p in zip(batched, plain)]  # a stopped row's pad
    assert all(e == p[: len(e)] and e for e, p in zip(ended, plain))  # the same tokens, stopped at most earlier

    def first_line(tokens):
        return base.tokenizer.decode(tokens, skip_special_tokens=True).strip().split("\n")[0].strip()

    assert [first_line(b) for b in batched] == [first_line(p) for p in plain]  # what is scored: the same


def _old_perplexity_items(probe, model) -> list[float]:
    """The probe's per-text NLL as computed before: full logits, a reshaped float copy, cross-entropy."""
    head = probe.lm_head() if probe.uses_base_head else None
    items = []
    with torch.inference_mode():
        for ids in probe.encoded.split(probe.rows):
            with body_output(model) if head is not None else contextlib.nullcontext({}) as seen:
                out = model(input_ids=ids, attention_mask=torch.ones_like(ids))
            logits = (out.logits[:, out.logits.shape[1] - ids.shape[1]:] if head is None
                      else real_positions(seen, ids) @ head.T)
            nll = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                                  reduction="none")
            items.extend(nll.view(ids.shape[0], -1).mean(1).tolist())
    return items


@pytest.mark.parametrize("task,name", [("bbc-headline", None), ("bbc-headline", "prompt-tuning"),
                                       ("bbc-headline", "lora"), ("bbc-topic", None)])
def test_the_perplexity_probe_scores_what_it_scored_before(task, name):
    cfg = trial_config("model=tiny-llama", f"task={task}")
    base = trial.load_base(cfg)
    probe = trial.make_probe(cfg, base)
    model = _perturbed(base.model, name, base.arch) if name else base.model.eval()
    if name == "prompt-tuning":
        assert isinstance(model, peft.PeftModel)
    scored = probe.measure(model)
    before = _old_perplexity_items(probe, model)
    assert scored.items == pytest.approx(before, rel=1e-5, abs=1e-5)
    assert scored.value == pytest.approx(math.exp(sum(before) / len(before)), rel=1e-5)
