"""Perplexity probe for decoders: general text the task never saw, scored by the language-model head.

A decoder fine-tuned for generation is scored as it serves, with its own LM head (a soft prompt active, its virtual
positions dropped). A decoder fine-tuned for classification has no LM head: its body, as it serves, is scored
through the base model's LM head, read from the base checkpoint when scoring (tied or untied, as in Llama 3), so
no copy of it sits in memory while the trial trains.
"""

from __future__ import annotations

import hashlib
import math
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from bench.probes.score import ProbeScore, body_output, real_positions
from bench.probes.text import general_text_windows

LOGITS_PER_FORWARD = 2**25  # float32 logits one forward may hold (128 MiB): a 49k vocabulary is 6 MiB per token


class PerplexityProbe:
    name = "perplexity"
    higher_is_better = False
    autocast = nullcontext

    def __init__(self, tokenizer, samples: int, max_length: int, batch_size: int, device, lm_head=None):
        self.device = device
        self.encoded = torch.tensor(general_text_windows(tokenizer, samples, max_length))
        self.rows = max(1, min(batch_size, LOGITS_PER_FORWARD // (self.encoded.shape[1] * len(tokenizer))))
        self.lm_head = lm_head  # () -> the base LM-head weight, for a model without its own LM head
        self.uses_base_head = False

    def prepare(self, model) -> None:
        self.uses_base_head = model.get_output_embeddings() is None
        if self.uses_base_head and self.lm_head is None:
            raise NotImplementedError("a decoder with a classification head is probed through the base LM head, "
                                      "and none was given")

    def cache_identity(self) -> list:
        return [self.name, list(self.encoded.shape), hashlib.sha256(self.encoded.numpy().tobytes()).hexdigest()[:16]]

    def score(self, model) -> float:
        return self.measure(model).value

    @torch.inference_mode()
    def measure(self, model) -> ProbeScore:
        model.eval()
        with self.autocast():
            return self._measure(model)

    def _measure(self, model) -> ProbeScore:
        head = self.lm_head().to(self.device) if self.uses_base_head else None
        per_text_nll = []
        for ids in self.encoded.split(self.rows):
            ids = ids.to(self.device)
            with body_output(model) if head is not None else nullcontext({}) as seen:
                out = model(input_ids=ids, attention_mask=torch.ones_like(ids))
            if head is None:
                logits = out.logits[:, out.logits.shape[1] - ids.shape[1]:]  # soft prompts' positions come first
            else:
                logits = real_positions(seen, ids).to(head.dtype) @ head.T
            nll = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                                  reduction="none")
            per_text_nll.extend(nll.view(ids.shape[0], -1).mean(1).tolist())
        tokens = [self.encoded.shape[1] - 1] * len(per_text_nll)
        return ProbeScore(math.exp(sum(per_text_nll) / len(per_text_nll)), per_text_nll, tokens)
