"""What every probe shares: its score (with per-item values), the protocol it follows, forgetting as a relative loss,
and reading the transformer body's output from a hook while the whole model runs (bench.probes says why)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass
class ProbeScore:
    value: float  # the probe's score (perplexity, recall@1)
    items: list[float] = field(default_factory=list)  # per-item score: a text's mean NLL per token, a pair's hit
    weights: list[int] = field(default_factory=list)  # per-item weight where the score pools (tokens per text)


@runtime_checkable
class Probe(Protocol):
    """What the trial needs from a probe."""

    name: str
    higher_is_better: bool
    autocast: object  # () -> the precision context every score is computed in

    def prepare(self, model) -> None:
        """Check, on the base model before any method is applied, that the probe can score it; note what it must
        read from the base checkpoint later (a classification decoder's LM head)."""

    def measure(self, model) -> ProbeScore:
        """The score and the per-item scores of the model as it serves."""

    def score(self, model) -> float:
        """measure(model).value."""

    def cache_identity(self) -> list:
        """What, beside the model and the config, changes the base score (texts, pairs, lengths)."""


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


class BodyNotCalled(RuntimeError):
    """The model's forward pass did not go through its transformer body: the probe cannot see it."""


@contextmanager
def body_output(model):
    """`with body_output(model) as seen: out = model(input_ids=ids, ...)`; then real_positions(seen, ids) is the
    body's last hidden state of that call at the input's own positions (the body of a seq2seq model: its encoder)."""
    seen: dict = {}

    def keep(module, args, output):
        seen["hidden"] = output[0] if isinstance(output, tuple) else output.last_hidden_state

    handle = backbone(model).register_forward_hook(keep)
    try:
        yield seen
    finally:
        handle.remove()


def real_positions(seen: dict, input_ids):
    """The hidden states of the input's tokens: soft prompts (prompt tuning, p-tuning) are prepended to the input,
    so their virtual positions come first and are dropped; prefix tuning adds none."""
    if "hidden" not in seen:
        raise BodyNotCalled("the model's forward pass did not go through its transformer body")
    hidden = seen.pop("hidden")
    return hidden[:, hidden.shape[1] - input_ids.shape[1]:]
