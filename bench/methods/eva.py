"""EVA (Paischer et al., 2024, explained variance adaptation) through peft: LoRA whose A is initialised, before the
first step, from the top right-singular vectors of each adapted layer's inputs on the training batches; B starts at
zero, so training still starts from the base model.

The init needs data, so it runs in the callbacks hook at the start of training, on the trial's own training
dataloader (its cost shows in the training time, as it is part of the method's). rho 1 keeps every layer at rank r
(no redistribution), so the parameter count is LoRA's and the optimizer's tensors stay the ones EVA fills in place.
"""

from dataclasses import dataclass

from bench.methods import check, register
from bench.methods._calibration import Batches, uncounted
from bench.methods._common import peft_wrap, resolve_targets
from bench.methods.lora import LoraConfig


@dataclass
class EvaConfig(LoraConfig):
    dropout: float = 0.0
    tau: float = 0.99  # stop collecting batches once the singular vectors' cosine similarity reaches this

    def __post_init__(self):
        super().__post_init__()
        check(0 < self.tau <= 1, "tau", self.tau, "must be in (0, 1]")


def eva_init(model, cfg: EvaConfig, max_steps: int) -> list:
    """The `callbacks` hook: EVA's data-driven init of A on the training dataloader, once, before the first step."""
    from transformers import TrainerCallback

    class EvaInit(TrainerCallback):
        def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
            from peft import initialize_lora_eva_weights

            with uncounted(train_dataloader):  # EVA's batches are not training steps
                initialize_lora_eva_weights(model, Batches(train_dataloader, model))

    return [EvaInit()]


@register("eva", family="reparameterization", config=EvaConfig, merges=True, callbacks=eva_init, peft_type="LORA",
          mixed_batches=True, summary="LoRA with A from the top singular vectors of each layer's training inputs")
def apply(model, cfg: EvaConfig, arch):
    import peft

    eva = peft.EvaConfig(rho=1.0, tau=cfg.tau, use_label_mask=arch.task_kind != "classification")
    peft_config = peft.LoraConfig(
        r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, init_lora_weights="eva", eva_config=eva,
        target_modules=resolve_targets(cfg.target_modules, arch, model),
    )
    return peft_wrap(model, peft_config, arch)
