"""PiSSA (Meng et al., 2024): LoRA initialised from the top-r singular vectors of each weight, data-free.

PiSSA moves those components out of the base weight at init (W = W_res + B·A), so the frozen base is the
residual W_res, not the original W: "frozen weights bit-identical" holds against the post-init base. The stored
adapter stays rank r: loading it re-runs the (deterministic, full-SVD) init on the original base, then overwrites
A and B. `init=olora` is the QR-based variant (Büyükakyüz, 2024).
"""

from dataclasses import dataclass

from bench.methods import check, register
from bench.methods.lora import LoraConfig, apply_lora


@dataclass
class PissaConfig(LoraConfig):
    alpha: float = 8  # scale alpha / r = 1: the adapter starts as the weight's principal part at its own size
    init: str = "pissa"  # pissa (full SVD) | pissa_niter_N (fast randomised SVD, N iterations) | olora
    dropout: float = 0.0  # PiSSA trains the principal components directly; the paper uses no dropout

    def __post_init__(self):
        super().__post_init__()
        check(self.init in ("pissa", "olora") or str(self.init).startswith("pissa_niter_"), "init", self.init,
              "must be pissa, pissa_niter_N or olora")


register("pissa", family="reparameterization", config=PissaConfig, merges=True,
         peft_type="LORA", mixed_batches=True,
         summary="LoRA started from the weights' top singular vectors (residual stays frozen)")(apply_lora)
