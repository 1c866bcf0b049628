"""Catastrophic-forgetting probes: score the base model, fine-tune, score again.

forgetting = relative loss of the probe score, so 0 means nothing forgotten and 0.1 means 10% worse:
  perplexity (lower is better): (after - before) / before
  recall@1 (higher is better):  (before - after) / before
"""

from __future__ import annotations


def relative_loss(before: float, after: float, higher_is_better: bool) -> float | None:
    if before is None or after is None or before == 0:
        return None
    return (before - after) / before if higher_is_better else (after - before) / before


def backbone(model):
    """The transformer body under any task head or peft wrapper (peft's layers are injected into it in place)."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model = model.get_base_model()
    return model.base_model


def make(arch, tokenizer, data, train_cfg, device):
    """The forgetting probe that fits the model: perplexity for decoders, retrieval for encoders."""
    from bench.probes.perplexity import PerplexityProbe
    from bench.probes.retrieval import RetrievalProbe
    from bench.probes.text import paragraph_pairs

    size = dict(max_length=train_cfg.max_length, batch_size=train_cfg.eval_batch_size, device=device)
    if arch.kind == "decoder":
        return PerplexityProbe(tokenizer, train_cfg.probe_samples, **size)
    if arch.kind == "encoder":
        pairs = data.probe_pairs[: train_cfg.probe_samples] or paragraph_pairs(train_cfg.probe_samples)
        return RetrievalProbe(tokenizer, pairs, **size)
    return None  # seq2seq: no probe yet
