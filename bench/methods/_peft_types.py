"""Every member of `peft.PeftType`, accounted for: the methods of this harness that run it (each registration names
its `peft_type`), or the reason it cannot run here. tests/test_peft_registry.py enumerates peft's registry at run
time, so a peft upgrade that adds a type fails there, naming it, until it is placed in one or the other.
"""

from __future__ import annotations

from bench import methods

# The reasons a type cannot run here, one line each, in the words `peft-bench-methods` prints.
NOT_RUNNABLE = {
    "XLORA": "needs several trained LoRA adapters to mix (X-LoRA learns a gating over existing experts)",
    "POLY": "needs several tasks: its skill router reads a `task_ids` tensor per example; one task is plain LoRA",
    "MULTITASK_PROMPT_TUNING": "needs several tasks (a `task_ids` tensor per example); one task is prompt tuning",
    "CPT": "not for this task type: few-shot in-context prompt tuning for causal LMs, whose loss reads per-token type "
           "masks of in-context examples that a dataset's batches do not carry (NaN loss on ours)",
}


def runs() -> dict[str, list[str]]:
    """peft type -> the registered methods that run it."""
    found: dict[str, list[str]] = {}
    for name, method in sorted(methods.registry().items()):
        if method.peft_type:
            found.setdefault(method.peft_type, []).append(name)
    return found


def peft_types() -> list[str]:
    from peft import PeftType

    return [member.value for member in PeftType]


def status() -> dict[str, dict]:
    """Per peft type: {"methods": [...]} where it runs, {"reason": "..."} where it cannot; None for neither."""
    running = runs()
    return {t: {"methods": running[t]} if t in running else {"reason": NOT_RUNNABLE[t]} if t in NOT_RUNNABLE
            else None for t in peft_types()}
