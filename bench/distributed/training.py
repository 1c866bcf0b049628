"""The Trainer's side of a distributed trial: its arguments (DDP or FSDP2), the Trainer class, and the trained model
gathered whole on rank 0.

FSDP is accelerate's FSDP2 (torch `fully_shard`): full shard (parameters resharded after forward), auto wrap by
transformer block (the model's `_no_split_modules`), the embeddings and the tail in units of their own, and the
Trainer's peft handling for adapters. On CPU accelerate knows only DDP (MULTI_CPU) although `fully_shard` runs on
gloo; CpuFsdpTrainer switches accelerate's state to FSDP before the model is prepared, so the same accelerate code
shards it (see CpuFsdpTrainer).
"""

from __future__ import annotations

import functools

FSDP_CONFIG = {
    "version": 2,
    "reshard_after_forward": True,  # full shard (ZeRO-3): parameters live sharded outside each unit's forward
    "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",  # one unit per block, from the model's _no_split_modules
    "state_dict_type": "FULL_STATE_DICT",
}


def backend(device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def trainer_arguments(cfg, device) -> dict:
    """TrainingArguments fields that a distributed trial changes ({} for one process)."""
    train = cfg.train
    if train.distributed == "none":
        return {}
    args = {
        "per_device_train_batch_size": train.batch_size // train.nproc,  # train.batch_size stays the global batch
        "ddp_backend": backend(device),
        "ddp_find_unused_parameters": False,  # every trainable parameter takes part in each step's loss
    }
    if train.distributed == "fsdp":
        args.update(fsdp=True, fsdp_config=dict(FSDP_CONFIG))
    return args


def trainer_class(cfg, device):
    from transformers import Trainer

    if cfg.train.distributed == "fsdp" and device.type == "cpu":
        return _cpu_fsdp_trainer()
    return Trainer


@functools.cache
def _cpu_fsdp_trainer():
    """The class is built on first use: importing this module must not import transformers."""
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
    from transformers import Trainer

    class CpuFsdpTrainer(Trainer):
        """accelerate sets FSDP only for accelerator devices (its state keeps MULTI_CPU, i.e. DDP, on CPU) although
        torch's `fully_shard` works over gloo. Switching the state to FSDP with the plugin the Trainer built is the
        one line that lets the Trainer and accelerate's FSDP2 code run unchanged on CPU, for CPU tests and for
        laptops; on GPU the plain Trainer is used."""

        def create_accelerator_and_postprocess(self):
            super().create_accelerator_and_postprocess()
            state = self.accelerator.state
            if state.distributed_type == DistributedType.MULTI_CPU:
                plugin = FullyShardedDataParallelPlugin(**self.args.fsdp_plugin_args)
                if state.mixed_precision != "no":  # as accelerate does for FSDP on GPU
                    plugin.set_mixed_precision(state.mixed_precision)
                state.distributed_type, state.fsdp_plugin = DistributedType.FSDP, plugin
                # every later AcceleratorState() copies the process state's type over its own: set both
                PartialState._shared_state["distributed_type"] = DistributedType.FSDP
            self.is_fsdp_enabled = True

    return CpuFsdpTrainer


def full_state_dict(trainer) -> dict:
    """Every rank calls it (a collective): the trained weights, gathered whole, on the CPU of rank 0 (and of every
    rank for DDP, where each already holds them)."""
    return trainer.accelerator.get_state_dict(trainer.model, unwrap=True)


def is_sharded(model) -> bool:
    """True where parameters are FSDP2 shards (DTensors): such a model answers only with all ranks taking part."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())

