"""The collective pieces of gathering a distributed trial's model on rank 0 (bench.trial.ranks drives them): the
model's outputs, the sharded model released before rank 0 builds the whole one, and a slice of the trained model's
outputs kept beside the record (RUN_DIR/outputs.safetensors), so a reloaded checkpoint can be checked against the
model that was trained.
"""

from __future__ import annotations

import gc
from pathlib import Path

import torch
from safetensors.torch import save_file

OUTPUTS_NAME = "outputs.safetensors"
KEPT_POSITIONS = 8  # logits of the first example's first positions: enough to compare, small for any vocabulary


def logits(model, batch):
    with torch.no_grad():
        return model(**batch).logits.float()


def release(trainer, ready) -> None:
    """Drop the sharded model and its optimizer before rank 0 builds the whole model on the same device (for a
    large model both would not fit); the gathered weights are on the CPU by then."""
    trainer.model = trainer.model_wrapped = trainer.optimizer = trainer.lr_scheduler = None
    ready.model = None
    trainer.accelerator.free_memory()  # accelerate keeps the prepared model and optimizer too
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def keep_outputs(run_dir: Path, batch: dict, reference) -> None:
    kept = {"input_ids": batch["input_ids"][:1].contiguous().cpu(),
            "logits": reference[:1, :KEPT_POSITIONS].contiguous().cpu()}
    if "attention_mask" in batch:
        kept["attention_mask"] = batch["attention_mask"][:1].contiguous().cpu()
    save_file(kept, str(Path(run_dir) / OUTPUTS_NAME))
