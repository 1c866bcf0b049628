"""QLoRA (Dettmers et al., 2023): the frozen base linear layers quantized to 4-bit NF4 (bitsandbytes), LoRA in
bf16 beside them. Needs bitsandbytes and a CUDA device; elsewhere the trial is recorded `skipped` with the reason.

The model arrives already loaded, so the block's linear layers are quantized here, in place; peft then wraps
them as it does for a model loaded with `BitsAndBytesConfig(load_in_4bit=True)`. Not marked mergeable: folding
the update into 4-bit weights re-quantizes them and changes the outputs (merge into a bf16 copy instead).
"""

import importlib.util
from dataclasses import dataclass
from typing import Any

from bench import Unsupported
from bench.methods import check, register
from bench.methods._common import peft_wrap, resolve_targets
from bench.methods.lora import LoraConfig


@dataclass
class QloraConfig(LoraConfig):
    r: int = 16
    target_modules: Any = "all-linear"  # the QLoRA paper adapts every linear layer of the blocks
    quant_type: str = "nf4"  # nf4 (the paper's NormalFloat) | fp4
    double_quant: bool = True  # quantize the quantization constants too

    def __post_init__(self):
        super().__post_init__()
        check(self.quant_type in ("nf4", "fp4"), "quant_type", self.quant_type, "must be nf4 or fp4")


def _check_runtime(model) -> None:
    import torch

    if importlib.util.find_spec("bitsandbytes") is None:
        raise Unsupported("`method` ('qlora') needs bitsandbytes: pip install 'peft-bench[gpu]'")
    if not torch.cuda.is_available() or next(model.parameters()).device.type != "cuda":
        raise Unsupported("`method` ('qlora') needs a CUDA device (bitsandbytes 4-bit kernels); this trial runs on CPU")


def quantize(model, names: list[str], cfg: QloraConfig):
    """Replace each named linear layer by a frozen bitsandbytes Linear4bit holding its weights."""
    import bitsandbytes as bnb

    compute_dtype = next(model.parameters()).dtype
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent, linear = model.get_submodule(parent_name), model.get_submodule(name)
        quantized = bnb.nn.Linear4bit(linear.in_features, linear.out_features, bias=linear.bias is not None,
                                      compute_dtype=compute_dtype, compress_statistics=cfg.double_quant,
                                      quant_type=cfg.quant_type, device="meta")
        # Params4bit quantizes when moved to the GPU; `module` lets bitsandbytes find the quant state again
        weight = bnb.nn.Params4bit(linear.weight.data, requires_grad=False, quant_type=cfg.quant_type,
                                   compress_statistics=cfg.double_quant, module=quantized)
        quantized.weight = weight.to(linear.weight.device)
        if linear.bias is not None:
            quantized.bias = linear.bias
        setattr(parent, child, quantized)
    model.is_loaded_in_4bit = True  # what peft reads to wrap Linear4bit layers with its 4-bit LoRA layer
    return model


@register("qlora", family="reparameterization", config=QloraConfig,
          peft_type="LORA", mixed_batches=True,
          summary="LoRA beside a 4-bit NF4-quantized frozen base (bitsandbytes, CUDA only)")
def apply(model, cfg: QloraConfig, arch):
    import peft

    _check_runtime(model)
    targets = resolve_targets(cfg.target_modules, arch, model)
    quantize(model, arch.attention + arch.mlp, cfg)
    peft_config = peft.LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, use_rslora=cfg.use_rslora,
                                  init_lora_weights=cfg.init, target_modules=targets)
    return peft_wrap(model, peft_config, arch)
