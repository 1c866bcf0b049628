"""LoRA-FA (Zhang et al., 2023): LoRA with the down-projection A frozen at its random init; only B trains.

With A frozen, backpropagation keeps only the r-dimensional A·x for B's gradient, not the layer's input, which is
the memory the method is for; the update B·A still merges like LoRA's. peft's `create_lorafa_optimizer`, which also
projects B's gradient, is not used: the trial builds its optimizer itself.
"""

from dataclasses import dataclass

from bench.methods import register
from bench.methods.lora import LoraConfig, apply_lora


@dataclass
class LoraFaConfig(LoraConfig):
    dropout: float = 0.0  # dropout before A would put the layer's input back among the saved activations


def apply(model, cfg: LoraFaConfig, arch):
    model = apply_lora(model, cfg, arch)
    for name, parameter in model.named_parameters():
        if ".lora_A." in name:
            parameter.requires_grad_(False)
    return model


register("lora-fa", family="reparameterization", config=LoraFaConfig, merges=True, peft_type="LORA",
         mixed_batches=True, summary="LoRA with A frozen at its random init; only B trains")(apply)
