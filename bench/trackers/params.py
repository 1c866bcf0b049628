"""Parameter efficiency: total, trainable, trainable fraction.

Counted as peft counts them (PeftModel.get_nb_trainable_parameters, applied to any module): a bitsandbytes 4-bit
parameter (Params4bit) packs two weights per byte of its storage, so its numel() is the packed storage's element
count, not its weights' (QLoRA's trainable fraction on SmolLM2 read about 1.6x too high from numel()).
"""

from __future__ import annotations

import torch.nn as nn


def count(model: nn.Module) -> dict:
    from peft import PeftModel

    # Shared tensors (tied embeddings) are counted once: named_parameters() already de-duplicates them.
    trainable, total = PeftModel.get_nb_trainable_parameters(model)
    return {"total_params": total, "trainable_params": trainable,
            "trainable_fraction": trainable / total if total else 0.0}
