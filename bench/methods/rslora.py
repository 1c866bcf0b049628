"""rsLoRA (Kalajdzievski, 2023): LoRA with the update scaled by alpha / sqrt(r), stable at high ranks."""

from dataclasses import dataclass

from bench.methods import register
from bench.methods.lora import LoraConfig, apply_lora


@dataclass
class RsLoraConfig(LoraConfig):
    r: int = 16  # rsLoRA pays off at higher ranks than plain LoRA's 8
    use_rslora: bool = True


register("rslora", family="reparameterization", config=RsLoraConfig, merges=True,
         peft_type="LORA", mixed_batches=True,
         summary="LoRA scaled by alpha/sqrt(r) so higher ranks keep learning")(apply_lora)
