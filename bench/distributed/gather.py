"""After training, all ranks together: their figures gathered on rank 0, and the trained model made whole there.

DDP: every rank already holds the whole trained model; rank 0 keeps its own. FSDP: the full state dict is gathered
(accelerate's get_state_dict, FULL_STATE_DICT) and loaded into the same model built afresh on rank 0, an ordinary
module that evaluates, merges and saves like a one-process trial's. The sharded model's outputs on the first test
batch are compared with the gathered model's (gathered_max_abs_diff), and a slice of them is kept beside the record
(RUN_DIR/outputs.safetensors), so a reloaded checkpoint can be checked against the model that was trained.
"""

from __future__ import annotations

from pathlib import Path

OUTPUTS_NAME = "outputs.safetensors"
KEPT_POSITIONS = 8  # logits of the first example's first positions: enough to compare, small for any vocabulary


def trained(cfg, trainer, memory, speed, ready, rank: int, run_dir: Path, comm: dict):
    """(the whole trained model on rank 0, else None; the group's record metrics on rank 0, else None)."""
    import torch.distributed as dist

    from bench.distributed import figures
    from bench.distributed.training import full_state_dict, is_sharded

    mine = {**memory.result(trainer.model, trainer.optimizer), **speed.result(), **comm}
    per_rank = [None] * dist.get_world_size()
    dist.all_gather_object(per_rank, mine)
    batch, reference = _reference_outputs(cfg, trainer.model, ready)
    if not is_sharded(trainer.model):  # DDP: rank 0's own copy is the trained model
        model, difference = ready.model, 0.0
    else:
        state = full_state_dict(trainer)  # a collective: every rank takes part
        _release(trainer, ready)
        model = _rebuilt(cfg, state) if rank == 0 else None
        difference = _max_abs_diff(cfg, ready.device, model, batch, reference) if rank == 0 else None
    if rank != 0:
        return None, None
    _keep_outputs(run_dir, batch, reference)
    group = figures.group_metrics(per_rank, cfg.train.distributed)
    group["gathered_max_abs_diff"] = difference
    return model, group


def _logits(model, batch):
    import torch

    with torch.no_grad():
        return model(**batch).logits.float()


def _reference_outputs(cfg, model, ready):
    """Outputs of the model as trained (under FSDP a forward every rank takes part in) on the first test batch."""
    from bench import trial

    model.eval()
    batch = trial._latency_batch(ready.data, ready.tokenizer, cfg, ready.device)
    with trial.autocast(cfg, ready.device):
        return batch, _logits(model, batch)


def _release(trainer, ready) -> None:
    """Drop the sharded model and its optimizer before rank 0 builds the whole model on the same device (for a
    large model both would not fit); the gathered weights are on the CPU by then."""
    import gc

    import torch

    trainer.model = trainer.model_wrapped = trainer.optimizer = trainer.lr_scheduler = None
    ready.model = None
    trainer.accelerator.free_memory()  # accelerate keeps the prepared model and optimizer too
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _rebuilt(cfg, state: dict):
    """The trial's model built again on rank 0 (same base, same method) holding the gathered weights."""
    from bench import trial

    fresh = trial.setup(cfg, metrics={}, with_probe=False).model
    fresh.load_state_dict(state)
    return fresh.eval()


def _max_abs_diff(cfg, device, model, batch, reference) -> float:
    from bench.trial import autocast

    with autocast(cfg, device):  # the reference's precision
        return float((_logits(model, batch) - reference).abs().max())


def _keep_outputs(run_dir: Path, batch: dict, reference) -> None:
    from safetensors.torch import save_file

    kept = {"input_ids": batch["input_ids"][:1].contiguous().cpu(),
            "logits": reference[:1, :KEPT_POSITIONS].contiguous().cpu()}
    if "attention_mask" in batch:
        kept["attention_mask"] = batch["attention_mask"][:1].contiguous().cpu()
    save_file(kept, str(Path(run_dir) / OUTPUTS_NAME))
