"""Classification: text -> class id; scored by argmax of the classifier's logits."""

from __future__ import annotations

import torch

from bench.tasks import metrics


def tokenize(rows, tokenizer, cfg, model_kind, max_length, label_names):
    import datasets

    index = {name: i for i, name in enumerate(label_names)}
    encoded = tokenizer([r["text"] for r in rows], truncation=True, max_length=max_length)
    return datasets.Dataset.from_dict({**encoded, "labels": [index[str(r["label"])] for r in rows]})


def collator(tokenizer):
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer)


@torch.inference_mode()
def evaluate(data, model, tokenizer, model_kind, batch_size, max_length, device):
    """Metrics over `data.test_rows`, their interval and per-item correct 1/0 (metrics.scored)."""
    index = {name: i for i, name in enumerate(data.label_names)}
    rows = [r for r in data.test_rows if str(r["label"]) in index]  # labels unseen in training cannot be predicted
    model.eval()
    predictions = predict(model, tokenizer, [r["text"] for r in rows], batch_size, max_length, device)
    references = [index[str(r["label"])] for r in rows]
    result = metrics.scored("classification", data.cfg.metrics, data.cfg.primary_metric, predictions, references)
    result["majority_share"] = majority_baseline(data, references)
    return result


def predict(model, tokenizer, texts: list[str], batch_size: int, max_length: int, device) -> list[int]:
    """The argmax class of each text, in text order. Batches hold texts of similar length (sorted), so a batch pads
    little; padding is masked, so a text's class does not depend on its batch."""
    encoded = tokenizer(texts, truncation=True, max_length=max_length).input_ids
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    predictions = [0] * len(texts)
    for start in range(0, len(order), batch_size):
        picked = order[start:start + batch_size]
        batch = tokenizer.pad([{"input_ids": encoded[i]} for i in picked], return_tensors="pt").to(device)
        for i, label in zip(picked, model(**batch).logits.argmax(-1).tolist()):
            predictions[i] = label
    return predictions


def majority_baseline(data, references: list[int]) -> float | None:
    """The primary metric of always predicting the most frequent training label (for accuracy: that label's share
    of the evaluated items), the floor a trained classifier must be shown above. None without training labels."""
    from collections import Counter

    counts = Counter(data.train["labels"]) if len(data.train) else None
    if not counts or not references:
        return None
    majority = counts.most_common(1)[0][0]
    primary = data.cfg.primary_metric
    return metrics.compute([primary], [majority] * len(references), references).get(primary)
