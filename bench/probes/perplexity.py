"""Perplexity probe for decoders: general text the task never saw, scored by the language-model head.

A decoder fine-tuned for generation is scored as it is. A decoder fine-tuned for classification lost its LM head,
so its fine-tuned body is scored through the base model's LM head, kept from before training.
"""

from __future__ import annotations

import math

import torch

from bench.probes import backbone
from bench.probes.text import general_text_chunks


class PerplexityProbe:
    name = "perplexity"
    higher_is_better = False

    def __init__(self, tokenizer, samples: int, max_length: int, batch_size: int, device):
        self.device = device
        self.batch_size = batch_size
        self.encoded = [tokenizer(t, truncation=True, max_length=max_length, return_tensors="pt").input_ids[0]
                        for t in general_text_chunks(samples)]
        self.lm_head = None

    def keep_lm_head(self, model) -> None:
        """Snapshot of the base LM head (output embeddings) for classification decoders."""
        head = backbone(model).get_input_embeddings() if model.config.tie_word_embeddings else None
        if head is None and hasattr(model, "get_output_embeddings") and model.get_output_embeddings() is not None:
            head = model.get_output_embeddings()
        if head is None:
            raise NotImplementedError("the base LM head of an untied decoder is not in a classification checkpoint")
        self.lm_head = head.weight.detach().clone()

    @torch.inference_mode()
    def score(self, model) -> float:
        model.eval()
        total_nll, total_tokens = 0.0, 0
        for ids in self.encoded:
            ids = ids.unsqueeze(0).to(self.device)
            if self.lm_head is None:
                loss = model(input_ids=ids, labels=ids).loss
            else:
                hidden = backbone(model)(input_ids=ids).last_hidden_state
                logits = hidden[:, :-1].float() @ self.lm_head.to(hidden.device).float().T
                loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
            count = ids.shape[1] - 1
            total_nll += float(loss) * count
            total_tokens += count
        return math.exp(total_nll / total_tokens)
