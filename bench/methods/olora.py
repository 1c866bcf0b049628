"""OLoRA (Büyükakyüz, 2024): LoRA initialised from a QR decomposition of each weight (A from R's first r rows, B from
Q's first r columns), data-free; the base keeps W - B·A, as PiSSA's does, so training starts from the base model.

As for PiSSA the frozen base is the post-init residual, not the original weight, and loading a checkpoint re-runs
the (deterministic) QR init on the original base, then overwrites A and B.
"""

from dataclasses import dataclass

from bench.methods import register
from bench.methods.lora import LoraConfig, apply_lora


@dataclass
class OloraConfig(LoraConfig):
    alpha: float = 8  # scale alpha / r = 1: the adapter starts as the weight's orthonormal part at its own size
    init: str = "olora"  # peft init_lora_weights
    dropout: float = 0.0


register("olora", family="reparameterization", config=OloraConfig, merges=True, peft_type="LORA",
         mixed_batches=True, summary="LoRA started from a QR decomposition of each weight (residual stays frozen)")(
    apply_lora)
