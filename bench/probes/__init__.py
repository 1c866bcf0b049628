"""Catastrophic-forgetting probes: score the base model, fine-tune, score again.

forgetting = relative loss of the probe score, so 0 means nothing forgotten and 0.1 means 10% worse:
  perplexity (lower is better): (after - before) / before
  recall@1 (higher is better):  (before - after) / before

Every probe scores the model as it serves: the whole model is called (a soft prompt or prefix active, its virtual
positions dropped from the score), and the transformer body's output is read from a hook. So the five method
families are probed the same way, and a probe never reads around what a method changed.
"""

from __future__ import annotations

from contextlib import nullcontext

from bench.config import ConfigError
from bench.probes.perplexity import PerplexityProbe
from bench.probes.retrieval import RetrievalProbe
from bench.probes.score import (  # noqa: F401 (the probes' shared names, read as bench.probes.X)
    BodyNotCalled,
    Probe,
    ProbeScore,
    backbone,
    body_output,
    real_positions,
    relative_loss,
)
from bench.probes.text import paragraph_pairs


def make(arch, tokenizer, data, train_cfg, device, lm_head=None, autocast=nullcontext):
    """The forgetting probe that fits the model: perplexity for decoders, retrieval for encoders, None for seq2seq.
    lm_head: a callable giving the base model's LM-head weight, for decoders trained with a classification head.
    autocast: the precision context every score is computed in (before and after alike)."""
    if train_cfg.probe_max_length < 2:  # a perplexity needs a token to predict from one before it
        raise ConfigError(f"`train.probe_max_length` ({train_cfg.probe_max_length}) must be >= 2")
    size = {"max_length": train_cfg.probe_max_length, "batch_size": train_cfg.eval_batch_size, "device": device}
    if arch.kind == "decoder":
        probe = PerplexityProbe(tokenizer, train_cfg.probe_samples, lm_head=lm_head, **size)
    elif arch.kind == "encoder":
        pairs = data.probe_pairs[: train_cfg.probe_samples] or paragraph_pairs(train_cfg.probe_samples)
        probe = RetrievalProbe(tokenizer, pairs, **size)
    else:
        return None  # seq2seq: no probe yet
    probe.autocast = autocast
    return probe
