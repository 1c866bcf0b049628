"""One trial over several processes: DDP or FSDP through transformers' Trainer and accelerate, under torch's elastic
launcher (what `torchrun` runs), gloo on CPU and NCCL on GPU.

    peft-bench model=tiny-llama method=full train.distributed=fsdp train.nproc=2
    peft-bench model=tiny-llama method=lora train.distributed=ddp train.nproc=2

The trial's own process (the single run's, or the sweep's isolated trial process) becomes the launcher: it starts
train.nproc rank processes (bench.launch.rank), waits, and turns rank 0's result into the trial record. A rank
that dies fails the trial with its cause and the launcher stops the others; ranks die with the launcher (parent-death
signal), so a sweep's timeout or kill of the trial process ends the whole group. docs/distributed.md says how each
figure is measured.
"""

from __future__ import annotations

NONE = "none"


def enabled(cfg) -> bool:
    return cfg.train.distributed != NONE
