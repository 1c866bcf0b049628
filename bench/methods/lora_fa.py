"""LoRA-FA (Zhang et al., 2023) as peft ships it: LoRA with the down-projection A frozen at its random init, and
peft's `create_lorafa_optimizer`, which trains B with AdamW on B's gradient projected through (A·Aᵀ)⁻¹ (the
gradient full fine-tuning would give the product B·A, at the best B alone can follow).

With A frozen, backpropagation keeps only the r-dimensional A·x for B's gradient, not the layer's input, which is
the memory the method is for; the update B·A still merges like LoRA's. A is frozen at apply already (peft's
optimizer freezes it again): the trainable count is read before any optimizer exists.
"""

import inspect
from dataclasses import dataclass

from bench.methods import check, register
from bench.methods.lora import LoraConfig, apply_lora


@dataclass
class LoraFaConfig(LoraConfig):
    dropout: float = 0.0  # dropout before A would put the layer's input back among the saved activations

    def __post_init__(self):
        super().__post_init__()
        # peft's LoRA-FA optimizer pairs the tensors named lora_* two by two (A, B): DoRA's magnitude breaks the pairs
        check(not self.use_dora, "use_dora", self.use_dora, "must be false with peft's LoRA-FA optimizer")


def apply(model, cfg: LoraFaConfig, arch):
    model = apply_lora(model, cfg, arch)
    for name, parameter in model.named_parameters():
        if ".lora_A." in name:
            parameter.requires_grad_(False)
    return model


def lorafa_optimizer(model, cfg: LoraFaConfig, lr: float, weight_decay: float):
    """The `optimizer` hook: peft's LoRA-FA optimizer (AdamW for the head and anything else that trains)."""
    from peft.optimizers import create_lorafa_optimizer

    if "r" in inspect.signature(create_lorafa_optimizer).parameters:  # peft 0.21 and earlier take the scaling's terms
        return create_lorafa_optimizer(model, r=cfg.r, lora_alpha=cfg.alpha, lr=lr, weight_decay=weight_decay,
                                       use_rslora=cfg.use_rslora)
    return create_lorafa_optimizer(model, lr=lr, weight_decay=weight_decay)  # later ones read each layer's config


register("lora-fa", family="reparameterization", config=LoraFaConfig, merges=True, peft_type="LORA",
         optimizer=lorafa_optimizer, mixed_batches=True,
         summary="LoRA with A frozen at its random init; only B trains")(apply)
