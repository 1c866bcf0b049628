"""DoRA (Liu et al., 2024): the weight split into magnitude and direction; LoRA updates the direction."""

from dataclasses import dataclass

from bench.methods import register
from bench.methods.lora import LoraConfig, apply_lora


@dataclass
class DoraConfig(LoraConfig):
    use_dora: bool = True


register("dora", family="reparameterization", config=DoraConfig, peft_type="LORA", merges=True,
         summary="LoRA on the direction plus a trainable magnitude per output")(apply_lora)
