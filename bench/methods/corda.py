"""CorDA (Yang et al., 2024, context-oriented decomposition adaptation) through peft: LoRA whose A and B come from an
SVD of each adapted weight multiplied by the covariance of that layer's inputs on the training data; the adapter
takes those components out of the weight (W = W_res + B·A), so training starts from the base model and the frozen
base is the residual, as PiSSA's is. `mode` ipm (instruction-previewed) starts the adapter from the components the
data uses most; kpm (knowledge-preserved) from those it uses least, leaving the rest of the weight intact.

peft runs `preprocess_corda` over calibration batches before `get_peft_model`. The trial's data reaches a method
only once training starts (the `callbacks` hook, as for EVA), after the optimizer holds the LoRA tensors, so the
order is turned around with peft's own pieces: apply wraps plain LoRA (B = 0: the base model), and at the start of
training `preprocess_corda` hooks the wrapped layers' base linears over `calibration_batches` training batches (one
row at a time, padding cut off: peft's covariance hook reads a single sequence), then each LoRA layer runs peft's
`corda_init`, which fills A and B in place and writes W_res into the frozen base. The batches count as the method's
training time, not as training steps.

The stored adapter is peft's conversion to plain LoRA (ΔW = B·A − B₀·A₀, rank 2r), which loads on the original
base: the residual depends on the data, so an adapter of rank r alone could not restore the model. `save_pretrained`
of the trained model writes it (the initial adapter is kept for that when the init runs).
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

from bench.methods import check, check_counts, register
from bench.methods._calibration import Batches, uncounted
from bench.methods.lora import LoraConfig, apply_lora

ADAPTER = "default"


@dataclass
class CordaConfig(LoraConfig):
    alpha: float = 8  # scale alpha / r = 1: the adapter starts as the chosen components at their own size
    dropout: float = 0.0  # as PiSSA: the adapter trains the weight's own components
    mode: str = "ipm"  # ipm: the components the data uses most (fine-tuning) | kpm: least (keeps knowledge)
    calibration_batches: int = 8  # training batches whose inputs give each layer's covariance

    def __post_init__(self):
        super().__post_init__()
        check_counts(self, "calibration_batches")
        check(self.mode in ("ipm", "kpm"), "mode", self.mode, "must be ipm or kpm")
        check(self.init is True, "init", self.init, "must be true: CorDA's own init replaces it at the first step")
        check(not self.use_dora, "use_dora", self.use_dora, "must be false (CorDA initialises plain LoRA)")


def corda_init(model, cfg: CordaConfig, max_steps: int) -> list:
    """The `callbacks` hook: CorDA's init on the training dataloader, once, before the first step."""
    from transformers import TrainerCallback

    class CordaInit(TrainerCallback):
        def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
            with uncounted(train_dataloader):  # calibration batches are not training steps
                initialise(model, cfg, Batches(train_dataloader, model))

    return [CordaInit()]


def initialise(model, cfg: CordaConfig, batches) -> None:
    """peft's CorDA preprocessing over the first `calibration_batches` batches, then its init of every LoRA layer."""
    import peft
    from peft.tuners.lora import LoraLayer
    from peft.tuners.lora.config import CordaConfig as PeftCordaConfig  # not exported at peft's top level
    from peft.tuners.lora.corda import preprocess_corda

    layers = {name: module for name, module in model.named_modules() if isinstance(module, LoraLayer)}
    corda = peft.LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, init_lora_weights="corda",
                            corda_config=PeftCordaConfig(corda_method=cfg.mode),
                            target_modules=[f"{name}.base_layer" for name in layers])
    training = model.training
    preprocess_corda(model, corda, run_model=functools.partial(_run_rows, model, batches, cfg.calibration_batches))
    model.train(training)  # preprocessing switches the model to eval
    for layer in layers.values():
        layer.corda_init(ADAPTER, "corda")
    _keep_initial_for_saving(model)


def _run_rows(model, batches, count: int) -> None:
    """Forward every row of the first `count` batches on its own, without padding, through the base model; an
    encoder-decoder's target row goes along (as labels: the decoder's layers need inputs too)."""
    import torch

    decodes = bool(getattr(model.config, "is_encoder_decoder", False))
    with torch.no_grad(), model.disable_adapter():
        for index, batch in enumerate(batches):
            if index == count:
                break
            mask = batch.get("attention_mask")
            for row, ids in enumerate(batch["input_ids"]):
                kept = ids[mask[row].bool()] if mask is not None else ids
                target = {"labels": _unpadded(batch["labels"][row])[None]} if decodes else {}
                model(input_ids=kept[None], attention_mask=torch.ones_like(kept)[None], **target)


def _unpadded(labels):
    """A target row without its -100 padding (the loss's ignore index), so no pad token reaches the decoder."""
    return labels[labels != -100]


def _keep_initial_for_saving(model) -> None:
    """Save the adapter as CorDA initialised it, and make the model's save_pretrained convert against it (peft's
    `path_initial_model_for_weight_conversion`), so that what is stored restores the trained model on the original
    base. The folder lives as long as the model (a finalizer, not an attribute: the merge tracker deep-copies it)."""
    folder = tempfile.mkdtemp(prefix="peft-bench-corda-")
    weakref.finalize(model, shutil.rmtree, folder, True)
    initial = str(Path(folder) / "initial")
    model.save_pretrained(initial)
    model.save_pretrained = functools.partial(_save_converted, model.save_pretrained, model, initial)


def _save_converted(save_pretrained, model, initial: str, save_directory, **kwargs) -> None:
    """peft's conversion to plain LoRA, with the trained task head put back: peft 0.21's conversion returns the
    LoRA tensors alone and drops `modules_to_save`, and the adapter would then not load."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file, save_file

    save_pretrained(save_directory, path_initial_model_for_weight_conversion=initial, **kwargs)
    head = {k: v.detach().contiguous() for k, v in get_peft_model_state_dict(model).items() if ".lora_" not in k}
    if head:
        file = Path(save_directory) / "adapter_model.safetensors"
        save_file({**load_file(str(file)), **head}, str(file), metadata={"format": "pt"})


register("corda", family="reparameterization", config=CordaConfig, merges=True, callbacks=corda_init,
         peft_type="LORA", mixed_batches=True,
         summary="LoRA started from each weight's components weighted by the training inputs' covariance")(apply_lora)
