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
    predictions = []
    model.eval()
    for start in range(0, len(rows), batch_size):
        batch = tokenizer([r["text"] for r in rows[start:start + batch_size]], truncation=True,
                          max_length=max_length, padding=True, return_tensors="pt").to(device)
        predictions += model(**batch).logits.argmax(-1).tolist()
    references = [index[str(r["label"])] for r in rows]
    return metrics.scored("classification", data.cfg.metrics, data.cfg.primary_metric, predictions, references)
