"""Generation: text -> target text (e.g. article -> headline); the loss covers the target tokens only.

Scored by greedy generation in batches (left padding; bench.tasks.greedy) and ROUGE against the reference.
"""

from __future__ import annotations

import functools

import torch

from bench.tasks import greedy, metrics

IGNORE = -100  # label id the loss skips
CHECKED_ITEMS = 4  # items whose first generated token is checked against a forward pass (a few forward passes)


def prompt_ids(text: str, tokenizer, template: str, budget: int) -> list[int]:
    """Template with the text inserted, the text truncated so the whole prompt fits in `budget` tokens."""
    before, _, after = template.partition("{text}")
    before_ids = tokenizer(before, add_special_tokens=False).input_ids if before else []
    after_ids = tokenizer(after, add_special_tokens=False).input_ids if after else []
    room = max(budget - len(before_ids) - len(after_ids), 1)
    text_ids = tokenizer(text, add_special_tokens=False, truncation=True, max_length=room).input_ids
    # BOS only where the tokenizer adds one itself (Llama does; SmolLM2's "bos" is a chat-turn marker).
    default_ids = tokenizer("a").input_ids
    bos = default_ids[:1] if tokenizer.bos_token_id is not None and default_ids[0] == tokenizer.bos_token_id else []
    return bos + before_ids + text_ids + after_ids


def target_ids(target: str, tokenizer, max_new_tokens: int) -> list[int]:
    ids = tokenizer(" " + target.strip(), add_special_tokens=False).input_ids
    return ids[: max_new_tokens - 1] + [tokenizer.eos_token_id]


def tokenize(rows, tokenizer, cfg, model_kind, max_length, label_names):
    import datasets

    columns = {"input_ids": [], "attention_mask": [], "labels": []}
    for row in rows:
        target = target_ids(str(row["label"]), tokenizer, cfg.max_new_tokens)
        if model_kind == "seq2seq":
            source = prompt_ids(row["text"], tokenizer, cfg.prompt_template, max_length)
            ids, labels = source, target
        else:
            source = prompt_ids(row["text"], tokenizer, cfg.prompt_template, max_length - len(target))
            ids, labels = source + target, [IGNORE] * len(source) + target
        columns["input_ids"].append(ids)
        columns["attention_mask"].append([1] * len(ids))
        columns["labels"].append(labels)
    return datasets.Dataset.from_dict(columns)


def collator(tokenizer):
    from transformers import DataCollatorForSeq2Seq

    return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE)


@torch.inference_mode()
def evaluate(data, model, tokenizer, model_kind, batch_size, max_length, device):
    """Greedy headlines for `data.test_rows`, scored with their interval and per-item ROUGE (metrics.scored), the
    generated text of every item (`generated`, what was scored) and the first-token check (first_token_check): where
    it fails, every quality figure is None with the reason, never another model's score under this one's name."""
    cfg = data.cfg
    budget = max_length - cfg.max_new_tokens
    prompts = [prompt_ids(r["text"], tokenizer, cfg.prompt_template, budget) for r in data.test_rows]
    model.eval()
    new_tokens = generate(model, tokenizer, prompts, model_kind, cfg.max_new_tokens, batch_size, device)
    texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    # the headline is the first generated line, without the whitespace around it (ROUGE's tokens ignore it either way)
    predictions = [t.strip().split("\n")[0].strip() for t in texts]
    references = [str(r["label"]) for r in data.test_rows]
    result = metrics.scored("generation", cfg.metrics, cfg.primary_metric, predictions, references)
    check = first_token_check(model, prompts, new_tokens, model_kind, device)
    if check["generation_check"] != "ok":
        result.update({name: None for name in cfg.metrics}, quality_ci_low=None, quality_ci_high=None, items=[])
    return {**result, **check, "generated": predictions}


def generate(model, tokenizer, prompts: list[list[int]], model_kind: str, max_new_tokens: int, batch_size: int,
             device) -> list[list[int]]:
    """Greedy new token ids for each prompt, in prompt order. Batches hold prompts of similar length (sorted), so
    little of a batch is padding; a row's tokens do not depend on its batch (left padding, positions as unpadded)."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[list[int]] = [[] for _ in prompts]
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues from the last real token of every row
    try:
        for start in range(0, len(order), batch_size):
            picked = order[start:start + batch_size]
            batch = tokenizer.pad([{"input_ids": prompts[i]} for i in picked], return_tensors="pt").to(device)
            tokens = _generate_batch(model, tokenizer, batch, model_kind, max_new_tokens)
            for row, i in enumerate(picked):
                out[i] = _until_eos(tokens[row].tolist(), tokenizer.eos_token_id)
    finally:
        tokenizer.padding_side = side
    return out


def _generate_batch(model, tokenizer, batch, model_kind: str, max_new_tokens: int) -> torch.Tensor:
    if model_kind == "seq2seq":  # the decoder starts from its own start token, which generate returns first
        output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id)
        return output[:, 1:]
    # greedy.greedy, not generate: peft's generate drops a prefix-tuning prefix (see bench.tasks.greedy)
    return greedy.greedy(model, batch["input_ids"], batch["attention_mask"], max_new_tokens, tokenizer.eos_token_id,
                         tokenizer.pad_token_id, finished=functools.partial(_first_line_done, tokenizer))


def _first_line_done(tokenizer, tokens: torch.Tensor) -> torch.Tensor:
    """Rows whose first line is complete: only the first generated line is scored (the headline), so a row that has
    begun a second line is done (an untrained model otherwise runs on to max_new_tokens)."""
    texts = tokenizer.batch_decode(tokens, skip_special_tokens=True)
    return torch.tensor(["\n" in text.lstrip() for text in texts], device=tokens.device)


def _until_eos(tokens: list[int], eos: int | None) -> list[int]:
    return tokens[: tokens.index(eos) + 1] if eos is not None and eos in tokens else tokens


def first_token_check(model, prompts: list[list[int]], new_tokens: list[list[int]], model_kind: str, device,
                      items: int = CHECKED_ITEMS) -> dict:
    """{"generation_check": "ok" | "mismatch", "quality_na_reason"}: for the first `items` prompts, the first
    generated token must be the argmax of the model's own forward pass (the path training used, the method
    active), up to a near tie (greedy.first_token_agrees)."""
    disagree = []
    for i, (prompt, tokens) in enumerate(list(zip(prompts, new_tokens))[:items]):
        if tokens and not greedy.first_token_agrees(_forward_logits(model, prompt, model_kind, device), tokens[0]):
            disagree.append(i)
    if not disagree:
        return {"generation_check": "ok", "quality_na_reason": None}
    return {"generation_check": "mismatch",
            "quality_na_reason": f"generation is not the trained model: on {len(disagree)} of "
                                 f"{min(items, len(prompts))} checked items the first generated token is not the "
                                 "argmax of a forward pass with the method active"}


def _forward_logits(model, prompt: list[int], model_kind: str, device) -> torch.Tensor:
    if model_kind != "seq2seq":
        return greedy.forward_next_token_logits(model, prompt, device)
    ids = torch.tensor([prompt], device=device)
    start = torch.tensor([[model.config.decoder_start_token_id]], device=device)
    return model(input_ids=ids, attention_mask=torch.ones_like(ids), decoder_input_ids=start).logits[0, -1].float()


def timing_batch(data, tokenizer, max_length: int, new_tokens: int, device) -> dict:
    """The first held-out prompt as a one-row batch: the request generation latency is timed on."""
    cfg = data.cfg
    prompt = prompt_ids(data.test_rows[0]["text"], tokenizer, cfg.prompt_template, max_length - new_tokens)
    ids = torch.tensor([prompt], device=device)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def timing_decoder(tokenizer):
    """decode(model, batch, new_tokens, on_token) for bench.trackers.decode: the greedy loop quality is scored with,
    run to exactly new_tokens tokens (no stop at end-of-sequence), so every timed repeat does the same work."""
    def decode(model, batch: dict, new_tokens: int, on_token) -> torch.Tensor:
        return greedy.greedy(model, batch["input_ids"], batch["attention_mask"], new_tokens, tokenizer.eos_token_id,
                             tokenizer.pad_token_id, stop_at_eos=False, on_token=on_token)

    return decode
