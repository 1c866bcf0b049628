"""AdaLoRA (Zhang et al., 2023) through peft: SVD-shaped LoRA whose rank budget moves to the layers that matter.

The rank schedule runs through the registry's `callbacks` hook, not a flag in the training loop: the hook sets
the schedule from the run's length and returns a TrainerCallback that calls `update_and_allocate` after each
optimizer step, while gradients (the importance scores' input) still exist, before the Trainer zeroes them.
"""

from dataclasses import dataclass
from typing import Any

from bench.methods import check, check_counts, register
from bench.methods._common import peft_wrap, resolve_targets


@dataclass
class AdaLoraConfig:
    init_r: int = 12  # rank every adapted layer starts with
    target_r: int = 8  # average rank once the budget has shrunk
    alpha: float = 32
    dropout: float = 0.05
    target_modules: Any = "all-linear"  # the paper adapts every weight matrix of the block
    tinit: float = 0.1  # fraction of training before ranks start to shrink
    tfinal: float = 0.2  # fraction at the end with the ranks fixed
    delta_t: int = 1  # steps between reallocations
    orth_reg_weight: float = 0.5  # weight of the orthogonality penalty on P and Q

    def __post_init__(self):
        check_counts(self, "init_r")
        check(isinstance(self.target_r, int) and 1 <= self.target_r <= self.init_r, "target_r", self.target_r,
              f"must be an integer in [1, init_r={self.init_r}]")
        check(0 <= self.tinit < 1, "tinit", self.tinit, "must be a fraction of training in [0, 1)")
        check(0 <= self.tfinal < 1 - self.tinit, "tfinal", self.tfinal, "must be in [0, 1 - tinit)")

    def schedule(self, total_step: int) -> dict:
        """peft's step counts for a run of `total_step` steps, leaving at least one budgeting step."""
        tinit, tfinal = int(self.tinit * total_step), int(self.tfinal * total_step)
        return dict(total_step=total_step, tinit=min(tinit, total_step - 1),
                    tfinal=max(0, min(tfinal, total_step - 1 - tinit)))


def rank_schedule(model, cfg: AdaLoraConfig, max_steps: int) -> list:
    """The `callbacks` hook: the schedule for this run's length, and the callback that drives it."""
    from transformers import TrainerCallback

    class RankSchedule(TrainerCallback):
        # on_optimizer_step: after optimizer.step(), before zero_grad, so the gradients are still there
        def on_optimizer_step(self, args, state, control, **kwargs):
            model.base_model.update_and_allocate(state.global_step)

    config = model.peft_config[model.active_adapter]
    for key, value in cfg.schedule(max_steps).items():
        setattr(config, key, value)  # the rank allocator reads this same config object
    return [RankSchedule()]


@register("adalora", family="reparameterization", config=AdaLoraConfig, merges=True, callbacks=rank_schedule,
          peft_type="ADALORA",
          summary="SVD-form LoRA that prunes ranks where importance is low, by a budget schedule")
def apply(model, cfg: AdaLoraConfig, arch):
    import peft

    peft_config = peft.AdaLoraConfig(
        init_r=cfg.init_r, target_r=cfg.target_r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, deltaT=cfg.delta_t,
        orth_reg_weight=cfg.orth_reg_weight, target_modules=resolve_targets(cfg.target_modules, arch, model),
        **cfg.schedule(1000),  # placeholder until the callbacks hook learns the run's length
    )
    return peft_wrap(model, peft_config, arch)
