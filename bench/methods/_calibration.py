"""Training batches read by a data-driven initialisation (EVA, CorDA) at the start of training, before the first
step: from the trial's own training dataloader, which the `callbacks` hook's `on_train_begin` receives.

The trial's counting collator logs every batch it collates for the throughput figures; the batches an
initialisation reads are not training steps, so `uncounted` takes them out again. The collator is found by duck
typing (a `batches` list under any wrappers): methods sit below the trackers and import nothing from them.
"""

from __future__ import annotations

from contextlib import contextmanager


class Batches:
    """The training batches as plain dicts (a BatchEncoding is not one) on the model's device."""

    def __init__(self, dataloader, model):
        self.dataloader, self.device = dataloader, next(model.parameters()).device

    def __len__(self):
        return len(self.dataloader)

    def __iter__(self):
        for batch in self.dataloader:
            yield {key: value.to(self.device) for key, value in dict(batch).items()}


@contextmanager
def uncounted(dataloader):
    """Batches collated inside the block are removed from the counting collator's log when it ends."""
    counted = _batches_counted(getattr(dataloader, "collate_fn", None))
    already = len(counted) if counted is not None else None
    try:
        yield
    finally:
        if counted is not None:
            del counted[already:]


def _batches_counted(collate):
    """The list where the trial's counting collator logs each collated batch, under any wrappers; None if none."""
    for _ in range(5):
        if collate is None or isinstance(getattr(collate, "batches", None), list):
            return getattr(collate, "batches", None)
        collate = getattr(collate, "data_collator", None) or getattr(collate, "collate", None)
    return None
