"""Training speed, as a TrainerCallback that listens to the loop: tokens/s and samples/s after warm-up steps,
FLOPs measured with torch.utils.flop_counter on one (excluded) step, and the loss trajectory.

Speed counts real (non-padding) tokens, what a user's data holds; FLOPs scale with padded tokens, what the model
computes on, so FLOPs of the counted step are divided by its padded tokens and multiplied by those of the others.

torch's FlopCounterMode has formulas for the GPU attention kernels but none for the CPU one that SDPA attention runs
(aten._scaled_dot_product_flash_attention_for_cpu and its backward): a decoder's attention counted 0 FLOPs on CPU
(-0.5% of a one-layer SmolLM2-shaped step, batch 8 x 128 tokens, -55% of a tiny Llama's at 256, against eager
attention). Formulas for them are registered here, so sdpa and eager attention count the same.
"""

from __future__ import annotations

import math
import time

import psutil
import torch
from transformers import TrainerCallback


def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_attention_backward_flops(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                                  **kwargs) -> int:
    """Model FLOPs: the two gradients of each forward matmul, what eager attention's backward counts. The kernel also
    recomputes the scores (torch's GPU formulas count that fifth matmul), which is not the model's work: MFU counts
    model FLOPs, and with it sdpa would count 9% more than eager on a tiny Llama at length 256."""
    from torch.utils.flop_counter import sdpa_flop_count

    return 2 * sdpa_flop_count(query_shape, key_shape, value_shape)


def register_cpu_attention_flops() -> None:
    """Give the CPU flash-attention ops FLOP formulas (Q·K^T and scores·V forward, their gradients backward).
    Idempotent; a torch without the ops, or with its own formula for them, is left as it is."""
    from torch.utils import flop_counter

    for name, formula in (("_scaled_dot_product_flash_attention_for_cpu", _cpu_attention_flops),
                          ("_scaled_dot_product_flash_attention_for_cpu_backward", _cpu_attention_backward_flops)):
        op = getattr(torch.ops.aten, name, None)
        if op is not None and op not in flop_counter.flop_registry:
            flop_counter.register_flop_formula(op)(formula)


class CountingCollator:
    """Wraps the task's collator to count the real (non-padding) tokens, padded tokens and examples of each batch."""

    def __init__(self, collate):
        self.collate = collate
        self.batches: list[tuple[int, int, int]] = []  # (real tokens, padded tokens, samples) per batch, in order

    def __call__(self, features):
        batch = self.collate(features)
        mask = batch.get("attention_mask")
        padded = int(batch["input_ids"].numel())
        self.batches.append((int(mask.sum()) if mask is not None else padded, padded, len(features)))
        return batch


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""


class ThroughputCallback(TrainerCallback):
    def __init__(self, counter: CountingCollator, warmup_steps: int, device: torch.device, measure_flops: bool):
        self.counter, self.device = counter, torch.device(device)
        self.measure_flops = measure_flops
        # The FLOP-counted step runs slower, so it is always among the excluded steps.
        self.first_timed_step = max(warmup_steps, 1 if measure_flops else 0)
        self.step_seconds: list[float] = []
        self.left_out: set[int] = set()  # steps another tracker slowed (a profiled one): never timed
        self.step_index = 0
        self.flops_step = None
        self.losses: list[float] = []
        self._flop_mode = None
        self.startup_seconds = None

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def on_step_begin(self, args, state, control, **kwargs):
        if self.step_index == 0:  # process start (imports, loading, caches) to the first training step
            self.startup_seconds = time.time() - psutil.Process().create_time()
        if self.measure_flops and self.step_index == 0:
            from torch.utils.flop_counter import FlopCounterMode

            register_cpu_attention_flops()
            self._flop_mode = FlopCounterMode(display=False)
            self._flop_mode.__enter__()
        self._sync()
        self._started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self._sync()
        elapsed = time.perf_counter() - self._started
        if self._flop_mode is not None:
            self._flop_mode.__exit__(None, None, None)
            self.flops_step = self._flop_mode.get_total_flops()
            self._flop_mode = None
        self.step_seconds.append(elapsed)
        self.step_index += 1

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        loss = logs.get("loss")
        if loss is not None:
            self.losses.append(float(loss))
        for key in ("loss", "grad_norm"):
            if logs.get(key) is not None and not math.isfinite(logs[key]):
                raise NonFiniteLoss(f"training {key} is {logs[key]} at step {state.global_step}")

    def leave_out(self, step: int | None) -> None:
        """Keep a step out of the timed ones (its time and tokens), e.g. one run under a profiler."""
        if step is not None:
            self.left_out.add(step)

    def result(self) -> dict:
        steps = len(self.step_seconds)
        batches = self.counter.batches[:steps]  # the collator may have prefetched past the last step
        timed = [i for i in range(self.first_timed_step, steps) if i not in self.left_out]
        seconds = sum(self.step_seconds[i] for i in timed)
        timed_batches = [batches[i] for i in timed if i < len(batches)]
        real, padded, samples = (sum(column) for column in zip(*timed_batches)) if timed_batches else (0, 0, 0)
        flops_per_padded_token = None
        if self.flops_step is not None and batches:
            flops_per_padded_token = self.flops_step / batches[0][1]  # the counted step is the first one
        all_padded = sum(p for _, p, _ in batches)
        return {
            "startup_seconds": self.startup_seconds,
            "train_steps": steps,
            "train_timed_steps": len(timed),
            "train_seconds": seconds,
            "train_seconds_all_steps": sum(self.step_seconds),
            "train_tokens": sum(t for t, _, _ in batches),
            "train_padded_tokens": all_padded,
            "train_tokens_per_s": real / seconds if seconds else None,
            "train_samples_per_s": samples / seconds if seconds else None,
            "train_flops": flops_per_padded_token * all_padded if flops_per_padded_token else None,
            "train_flops_per_s": (flops_per_padded_token * padded / seconds
                                  if flops_per_padded_token and seconds else None),
            "final_loss": self.losses[-1] if self.losses else None,
            "first_loss": self.losses[0] if self.losses else None,
        }
