"""Retrieval probe for encoders: recall@1 of paired texts (e.g. headline <-> first paragraph of held-out
articles) with mean-pooled embeddings of the encoder body, run as the model serves (a soft prompt active, its
virtual positions left out of the pooling): what its representations still know.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from bench.probes.score import ProbeScore, body_output, real_positions


class RetrievalProbe:
    name = "retrieval_recall@1"
    higher_is_better = True
    autocast = nullcontext

    def __init__(self, tokenizer, pairs: list[tuple[str, str]], max_length: int, batch_size: int, device):
        self.tokenizer, self.pairs = tokenizer, pairs
        self.max_length, self.batch_size, self.device = max_length, batch_size, device

    def prepare(self, model) -> None:
        """Nothing to keep: the body is scored as it is."""

    def cache_identity(self) -> list:
        digest = hashlib.sha256(json.dumps(self.pairs).encode()).hexdigest()[:16]
        return [self.name, len(self.pairs), self.max_length, digest]

    def _embed(self, model, texts: list[str]) -> torch.Tensor:
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(texts[start:start + self.batch_size], truncation=True, max_length=self.max_length,
                                   padding=True, return_tensors="pt").to(self.device)
            with body_output(model) as seen:
                model(**batch)
            hidden = real_positions(seen, batch["input_ids"])
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append(F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).float())
        return torch.cat(out)

    def score(self, model) -> float:
        return self.measure(model).value

    @torch.inference_mode()
    def measure(self, model) -> ProbeScore:
        model.eval()
        with self.autocast():
            return self._measure(model)

    def _measure(self, model) -> ProbeScore:
        queries = self._embed(model, [q for q, _ in self.pairs])
        documents = self._embed(model, [d for _, d in self.pairs])
        best = (queries @ documents.T).argmax(-1)
        hits = (best == torch.arange(len(self.pairs), device=best.device)).float().tolist()
        return ProbeScore(sum(hits) / len(hits), hits)
