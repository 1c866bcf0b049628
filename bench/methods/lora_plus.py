"""LoRA+ (Hayou et al., 2024): LoRA with B trained at `lr_ratio` times A's learning rate (the paper's ratio 16).

The trial builds one AdamW for every method, so B's larger rate is applied as a larger step, not as a second
parameter group: after each optimizer step B moves lr_ratio times as far as AdamW moved it. AdamW's step (the
normalised moment plus the decoupled weight decay) is proportional to the learning rate, so this is the same
update as peft's `create_loraplus_optimizer` with AdamW.
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


def b_step_scale(model, cfg: LoraPlusConfig, max_steps: int) -> list:
    """The `callbacks` hook: remember B before each optimizer step, stretch B's step by lr_ratio after it."""
    import torch
    from transformers import TrainerCallback

    b_weights = [p for name, p in model.named_parameters() if p.requires_grad and ".lora_B." in name]

    class BStepScale(TrainerCallback):
        before: list = []

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            self.before = [p.detach().clone() for p in b_weights]

        @torch.no_grad()
        def on_optimizer_step(self, args, state, control, **kwargs):
            for p, old in zip(b_weights, self.before):
                p.add_(p - old, alpha=cfg.lr_ratio - 1)

    return [BStepScale()]


register("lora-plus", family="reparameterization", config=LoraPlusConfig, merges=True, callbacks=b_step_scale,
         peft_type="LORA", mixed_batches=True, summary="LoRA with B trained at 16x A's learning rate")(apply_lora)
