"""Generation: text -> target text (e.g. article -> headline); the loss covers the target tokens only.

Scored by greedy generation in batches (left padding) and ROUGE against the reference.
"""

from __future__ import annotations

import torch

from bench.tasks import metrics

IGNORE = -100  # label id the loss skips


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
    """Greedy headlines for `data.test_rows`, scored with their interval and per-item ROUGE (metrics.scored)."""
    cfg = data.cfg
    predictions = []
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues from the last real token of every row
    try:
        for start in range(0, len(data.test_rows), batch_size):
            rows = data.test_rows[start:start + batch_size]
            budget = max_length - cfg.max_new_tokens
            prompts = [{"input_ids": prompt_ids(r["text"], tokenizer, cfg.prompt_template, budget)} for r in rows]
            batch = tokenizer.pad(prompts, return_tensors="pt").to(device)
            output = model.generate(**batch, max_new_tokens=cfg.max_new_tokens, do_sample=False,
                                    pad_token_id=tokenizer.pad_token_id)
            new_tokens = output if model_kind == "seq2seq" else output[:, batch["input_ids"].shape[1]:]
            texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            predictions += [t.strip().split("\n")[0] for t in texts]  # the headline is the first generated line
    finally:
        tokenizer.padding_side = side
    references = [str(r["label"]) for r in data.test_rows]
    return metrics.scored("generation", cfg.metrics, cfg.primary_metric, predictions, references)
