"""Merging a method into the base weights, checked: the merged model must give the unmerged model's outputs.

Two conditions, both on the largest absolute difference of the logits over the latency batch:
  rounding  folding B·A into W and computing W'x instead of Wx + B(Ax) changes the rounding, by about float32
            epsilon in float32 and by bf16's much larger epsilon under bf16 autocast: the difference must stay
            within MERGE_EPSILONS epsilons of the compute dtype (of the largest logit);
  effect    the difference must also be small against what the adapter changes (unmerged against the same model
            with its adapter layers off): a merge that folded nothing differs from the unmerged model by exactly
            the adapter's effect, which passes the rounding bound whenever that effect is small. Compared in
            float32 whatever the training precision: bf16 rounding (up to 8% of the largest logit) would hide the
            effect of an adapter trained for a few steps, and whether the weights were folded does not depend on
            the precision they are later run in.
The merged copy is made beside the unmerged model, so both can be timed in one loop. The check never fails the
trial: its differences and verdict are recorded beside the other figures, and a failed check leaves the merged
figures n/a.
"""

from __future__ import annotations

import contextlib
import copy

import torch

MERGE_EPSILONS = 10  # the merged outputs may differ by this many epsilons of the compute dtype (of the largest logit)
MERGE_RTOL_FLOOR = 1e-3  # float32: rounding of folded weights still adds up over the layers of a deep model
MERGE_EFFECT_SHARE = 0.1  # the merge may miss at most a tenth of what the adapter changes in the outputs


def tolerance(dtype: torch.dtype) -> float:
    """Allowed difference relative to the largest logit: 1e-3 in float32, 1e-2 in float16, 8e-2 in bfloat16."""
    return max(MERGE_RTOL_FLOOR, MERGE_EPSILONS * torch.finfo(dtype).eps)


@contextlib.contextmanager
def adapter_layers_off(model):
    """The model with its peft adapter layers switched off and everything else as trained (a trained task head,
    peft's modules_to_save, stays on: it is not what merging folds). Yields False where the model has no such
    layer (then the adapter's effect cannot be read)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer) and not m.disable_adapters]
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield bool(layers)
    finally:
        for layer in layers:
            layer.enable_adapters(True)


def _logits(model, batch: dict) -> torch.Tensor:
    return model(**batch).logits.float()


def merge_checked(model, batch: dict, compute_dtype: torch.dtype, autocast) -> tuple[object, dict]:
    """(merged copy, {merge_max_abs_diff, merge_effect_max_abs_diff, merge_tolerance, merge_ok}); the unmerged
    model is left as it was. On a merge that raises: (the unmerged model, {merge_ok: None, merge_error}). Only a
    copy with merge_ok true may stand for the method merged; merge_error says why where it may not."""
    rtol = tolerance(compute_dtype)
    exact = compute_dtype == torch.float32
    try:
        with torch.inference_mode():
            with autocast():
                before = _logits(model, batch)
                merged = copy.deepcopy(model).merge_and_unload()
                after = _logits(merged, batch)
            before32, after32 = (before, after) if exact else (_logits(model, batch), _logits(merged, batch))
            with adapter_layers_off(model) as switched:
                base32 = _logits(model, batch) if switched else None
    except Exception as error:  # noqa: BLE001 - a method or device that cannot merge: n/a for the merged figures
        return model, {"merge_ok": None, "merge_error": f"{type(error).__name__}: {str(error)[:300]}"}
    difference = float((before - after).abs().max())
    allowed = rtol * max(1.0, float(before.abs().max()))
    missed = float((before32 - after32).abs().max())
    effect = float((before32 - base32).abs().max()) if base32 is not None else None
    folded = effect is None or missed <= MERGE_EFFECT_SHARE * effect
    figures = {"merge_max_abs_diff": difference, "merge_effect_max_abs_diff": effect, "merge_tolerance": allowed,
               "merge_ok": difference <= allowed and folded}
    if difference > allowed:
        figures["merge_error"] = f"merged outputs differ by {difference:.3g}: more than the tolerance {allowed:.3g}"
    elif not folded:
        figures["merge_error"] = (f"merged outputs differ by {missed:.3g} in float32, more than {MERGE_EFFECT_SHARE:g} "
                                  f"of the adapter's own effect ({effect:.3g}): the merge did not fold the adapter")
    return merged, figures
