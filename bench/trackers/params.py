"""Parameter efficiency: total, trainable, trainable fraction."""

from __future__ import annotations

import torch.nn as nn


def count(model: nn.Module) -> dict:
    # Shared tensors (tied embeddings) are counted once: parameters() already de-duplicates them.
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total_params": total, "trainable_params": trainable,
            "trainable_fraction": trainable / total if total else 0.0}
