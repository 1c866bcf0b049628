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
        # Equal-length chunks (texts are >= 400 characters, cut to max_length tokens) batch without padding.
        encoded = [tokenizer(t, truncation=True, max_length=max_length).input_ids for t in general_text_chunks(4 * samples)]
        length = min(max_length, max(len(ids) for ids in encoded))
        self.encoded = torch.tensor([ids[:length] for ids in encoded if len(ids) >= length][:samples])
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
        for ids in self.encoded.split(self.batch_size):
            ids = ids.to(self.device)
            if self.lm_head is None:
                loss = model(input_ids=ids, labels=ids).loss  # mean over the batch's predicted tokens
            else:
                hidden = backbone(model)(input_ids=ids).last_hidden_state
                logits = hidden[:, :-1].float() @ self.lm_head.to(hidden.device).float().T
                loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
            count = ids.shape[0] * (ids.shape[1] - 1)
            total_nll += float(loss) * count
            total_tokens += count
        return math.exp(total_nll / total_tokens)
