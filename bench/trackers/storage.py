"""Storage per task: the bytes a method must keep to restore its fine-tuned model from the base.

peft models: what save_pretrained writes (adapter weights, saved head, VeRA's projections where saved).
Everything else: the tensors that changed, i.e. the trainable ones (the whole model for full fine-tuning).
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def save(model, folder: Path) -> None:
    from peft import PeftModel
    from safetensors.torch import save_file

    if isinstance(model, PeftModel):
        model.save_pretrained(folder)
        return
    changed = {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(changed, str(folder / "model.safetensors"))


def checkpoint_bytes(model) -> int:
    with tempfile.TemporaryDirectory(prefix="peft-bench-ckpt-") as folder:
        save(model, Path(folder))
        return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
