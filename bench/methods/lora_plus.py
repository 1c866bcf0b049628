"""LoRA+ (Hayou et al., 2024) as peft ships it: LoRA trained by peft's `create_loraplus_optimizer`, an AdamW whose
B matrices (and, in peft's grouping, every one-dimensional trainable tensor: the head's bias) step at `lr_ratio`
times the learning rate of A and the rest (the paper's ratio 16). The trial's learning rate is A's.
"""

from dataclasses import dataclass

from bench.methods import check, register
from bench.methods.lora import LoraConfig, apply_lora


@dataclass
class LoraPlusConfig(LoraConfig):
    lr_ratio: float = 16.0  # B's learning rate over A's (Hayou et al. recommend 16 for most tasks)

    def __post_init__(self):
        super().__post_init__()
        check(self.lr_ratio > 0, "lr_ratio", self.lr_ratio, "must be > 0")


def loraplus_optimizer(model, cfg: LoraPlusConfig, lr: float, weight_decay: float):
    """The `optimizer` hook: torch's AdamW in peft's LoRA+ parameter groups."""
    import torch
    from peft.optimizers import create_loraplus_optimizer

    return create_loraplus_optimizer(model, torch.optim.AdamW, lr=lr, loraplus_lr_ratio=cfg.lr_ratio,
                                     loraplus_weight_decay=weight_decay)


register("lora-plus", family="reparameterization", config=LoraPlusConfig, merges=True, optimizer=loraplus_optimizer,
         peft_type="LORA", mixed_batches=True, summary="LoRA with B trained at 16x A's learning rate")(apply_lora)
