"""Retrieval probe for encoders: recall@1 of paired texts (e.g. headline <-> first paragraph of held-out
articles) with mean-pooled embeddings of the encoder body: what its representations still know.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.probes import backbone


class RetrievalProbe:
    name = "retrieval_recall@1"
    higher_is_better = True

    def __init__(self, tokenizer, pairs: list[tuple[str, str]], max_length: int, batch_size: int, device):
        self.tokenizer, self.pairs = tokenizer, pairs
        self.max_length, self.batch_size, self.device = max_length, batch_size, device

    def _embed(self, model, texts: list[str]) -> torch.Tensor:
        body = backbone(model)
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(texts[start:start + self.batch_size], truncation=True, max_length=self.max_length,
                                   padding=True, return_tensors="pt").to(self.device)
            hidden = body(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append(F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).float())
        return torch.cat(out)

    @torch.inference_mode()
    def score(self, model) -> float:
        model.eval()
        queries = self._embed(model, [q for q, _ in self.pairs])
        documents = self._embed(model, [d for _, d in self.pairs])
        best = (queries @ documents.T).argmax(-1)
        return float((best == torch.arange(len(self.pairs), device=best.device)).float().mean())
