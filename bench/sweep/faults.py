"""Test-only fault injection for sweeps, so tests can make a trial fail the way real trials fail.

    PEFT_BENCH_FAULT='bitfit=raise,full=nan,prompt-tuning=sigkill' peft-bench -m 'method=glob(*)' ...

Read only by `bench.launch.worker` (the process of one sweep trial); the trial of the named method fails on its first
training step:

    raise    RuntimeError                         -> failed, phase train
    nan      the training loss becomes NaN        -> failed, phase train (NonFiniteLoss)
    oom      torch.OutOfMemoryError               -> failed, phase train
    sigkill  the trial process SIGKILLs itself    -> failed, phase process (recorded by the parent)
    hang     the trial sleeps for an hour         -> killed by trial_timeout, or still running when a test kills it

Not a user feature: it lives outside the config so that no record or config key ever mentions it.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time

from bench import methods

ENV = "PEFT_BENCH_FAULT"
FAULTS = ("raise", "nan", "oom", "sigkill", "hang")


def wanted(method: str) -> str | None:
    """The fault PEFT_BENCH_FAULT asks for this method, or None."""
    for item in os.environ.get(ENV, "").split(","):
        name, _, fault = item.partition("=")
        if name.strip() == method and fault.strip():
            if fault.strip() not in FAULTS:
                raise ValueError(f"{ENV}: fault {fault.strip()!r} for {method!r} must be one of {', '.join(FAULTS)}")
            return fault.strip()
    return None


def install(method_name: str) -> None:
    """Wrap the method's apply so the model it returns fails in training; a no-op when no fault is asked for."""
    fault = wanted(method_name)
    if fault is None:
        return
    original_get = methods.get

    def get(name: str):
        method = original_get(name)
        if name != method_name:
            return method

        def apply(model, cfg, arch):
            model = method.apply(model, cfg, arch)
            _arm(model, fault)
            return model

        return dataclasses.replace(method, apply=apply)

    methods.get = get


def _arm(model, fault: str) -> None:
    import torch

    def before(module, args, kwargs):
        if not module.training:
            return None  # probes and evaluation run the model too; only training fails
        if fault == "raise":
            raise RuntimeError(f"injected fault ({ENV}): raise")
        if fault == "oom":
            raise torch.OutOfMemoryError(f"injected fault ({ENV}): out of memory")
        if fault == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        if fault == "hang":
            time.sleep(3600)
        return None

    def after(module, args, kwargs, output):
        if module.training and fault == "nan" and getattr(output, "loss", None) is not None:
            output["loss"] = output.loss * float("nan")  # a real NaN loss: the trainer sees it like any other
        return output

    model.register_forward_pre_hook(before, with_kwargs=True)
    model.register_forward_hook(after, with_kwargs=True)
