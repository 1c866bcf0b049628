"""Merging a method into the base weights, checked: the merged model must give the unmerged model's outputs.

The tolerance follows the precision the outputs are computed in: folding B·A into W and computing W'x instead of
Wx + B(Ax) changes the rounding, by about float32 epsilon in float32 and by bf16's much larger epsilon under bf16
autocast. The check never fails the trial: its difference and verdict are recorded beside the other figures.
"""

from __future__ import annotations

import torch

MERGE_EPSILONS = 10  # the merged outputs may differ by this many epsilons of the compute dtype (of the largest logit)
MERGE_RTOL_FLOOR = 1e-3  # float32: rounding of folded weights still adds up over the layers of a deep model


def tolerance(dtype: torch.dtype) -> float:
    """Allowed difference relative to the largest logit: 1e-3 in float32, 1e-2 in float16, 8e-2 in bfloat16."""
    return max(MERGE_RTOL_FLOOR, MERGE_EPSILONS * torch.finfo(dtype).eps)


def merge_checked(model, batch: dict, compute_dtype: torch.dtype, autocast) -> tuple[object, dict]:
    """(merged model, {merge_max_abs_diff, merge_tolerance, merge_ok}); on a merge that raises, the unmerged model
    and the error, so the trial keeps everything else it measured."""
    rtol = tolerance(compute_dtype)
    try:
        with torch.inference_mode(), autocast():
            before = model(**batch).logits.float()
            merged = model.merge_and_unload()
            after = merged(**batch).logits.float()
    except Exception as error:  # noqa: BLE001 - a method or device that cannot merge: n/a for the merged figures
        return model, {"merge_ok": None, "merge_error": f"{type(error).__name__}: {str(error)[:300]}"}
    difference = float((before - after).abs().max())
    allowed = rtol * max(1.0, float(before.abs().max()))
    return merged, {"merge_max_abs_diff": difference, "merge_tolerance": allowed, "merge_ok": difference <= allowed}
