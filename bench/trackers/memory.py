"""Peak memory of the training phase, and where it goes.

GPU: the CUDA caching allocator's peak (torch.cuda.max_memory_allocated), and NVML's view of the same device
(found by UUID, so CUDA_VISIBLE_DEVICES, SLURM and Ray renumbering cannot point it at another GPU).
CPU: the kernel's high-water mark of the process RSS (VmHWM, reset when training starts), cross-checked against
RSS sampled every 10 ms by a background thread, which runs over the window only (below): no thread wakes beside the
timed steps.

Breakdown, on both devices, with parts that add up to the peak:
  weights, gradients, optimizer state  counted from tensors
  other (runtime)                      baseline before training minus the weights: on CPU the Python runtime,
                                       libraries and data; on GPU tensors resident before training that are not
                                       weights (a probe's copy, quantization state)
  activations                          measured: the bytes of the distinct tensors autograd saves for backward over
                                       one training step (saved-tensor hooks), weights and autocast's copies of
                                       them left out
  transient                            the rest of the peak: what a step holds besides its saved activations (the
                                       batch, logits and loss, gradients of activations during backward, autocast
                                       copies, optimizer temporaries) and the allocator's fragmentation
The weights must be resident before the baseline is read (bench.models.make_resident), or weight pages read in
during training would count as activations. On CPU, glibc's malloc is also told to hand freed blocks of 1 MiB and
more back to the system (fixed mmap and trim thresholds): by default it keeps them, by rules that depend on what
the process allocated before, and peaks of one and the same trial differed by up to 200 MiB (12%) between a sweep
whose cache was cold and one whose cache was warm. With fixed thresholds the RSS peak follows the live tensors.

That exact policy costs speed: every freed activation goes back to the kernel and comes back as fresh zeroed pages,
and a minilm-l6 training step ran 40% slower under it (3.28 vs 2.34 s on one loaded core). So on CPU the peak is
read over a window of the first training steps (the warm-up steps the speed figures leave out, at least two so
the optimizer state exists: `window_steps`), then the tracker stops and malloc gets glibc's own fast policy back
(blocks up to 32 MiB from the heap, kept for reuse) for the timed steps. The task collators pad each batch to its
longest example, so a short window could miss the longest batch: the window's steps after the first (the
FLOP-counted one) are padded to the longest training example (`pad_window`), so the window holds the peak of the
longest batch with the optimizer state. Only untimed steps are padded: padding every batch would make the timed
steps compute on padding a user's training would not carry. On GPU the caching allocator is unaffected and the
peak covers every step; its warm-up steps after the first are padded the same way. Before the GPU baseline the
allocator's cache is emptied: blocks cached by work before training (QLoRA's probe of its quantized base) would
otherwise stay in NVML's reading and in the reserved peak.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import re
import threading
from pathlib import Path

import psutil
import torch
from transformers import TrainerCallback

from bench.trackers import nvml

SAMPLE_INTERVAL_S = 0.01  # a 10 ms sleep between reads: ~0.1% of a core, never a busy loop (but see _Sampler)
MALLOC_RETURN_BYTES = 2**20  # freed heap blocks from this size on go back to the system at once
MALLOC_FAST_MMAP_BYTES = 32 * 2**20  # glibc's ceiling for its own dynamic mmap threshold (64-bit)
MALLOC_NEVER_TRIM_BYTES = 2**31 - 1  # the largest trim threshold mallopt takes (an int): the heap is never trimmed
MIN_WINDOW_STEPS = 2  # the second step is the first that holds the optimizer state through forward and backward
# The first step under the fast policy grows the heap back that the window's exact policy returned to the kernel
# (tens of thousands of page faults: a full fine-tuning step of minilm-l6 ran ~30% slower than the next); it is left
# out of the speed figures like the window itself.
SETTLE_STEPS = 1
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
PROC_STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def tensor_bytes(tensors) -> int:
    """Bytes of the distinct tensors this process holds: a sharded tensor (an FSDP2 DTensor) counts its local shard,
    so a distributed trial's ranks each read about 1/nproc of the weights, gradients and optimizer state."""
    seen, total = set(), 0
    for tensor in tensors:
        to_local = getattr(tensor, "to_local", None)
        tensor = to_local() if callable(to_local) else tensor
        if isinstance(tensor, torch.Tensor) and tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            total += tensor.numel() * tensor.element_size()
    return total


def breakdown(model, optimizer) -> dict:
    """Bytes held by weights, gradients (of trainable parameters) and optimizer state, counted from tensors."""
    parameters = list(model.parameters())
    state = optimizer.state.values() if optimizer is not None else []
    return {
        "mem_weights_bytes": tensor_bytes(parameters) + tensor_bytes(model.buffers()),
        "mem_grads_bytes": tensor_bytes(p for p in parameters if p.requires_grad),  # grads match their parameters
        "mem_optimizer_bytes": tensor_bytes(v for s in state for v in s.values()),
    }


def split_peak(peak_bytes: int, baseline_bytes: int, parts: dict, activations_bytes: int | None) -> dict:
    """The parts not counted from tensors before training, so that weights + grads + optimizer + other + activations
    + transient = peak; activations and transient are n/a where no step's saved tensors were measured. Not clipped
    at 0: a negative part says the measurement is wrong, and must show."""
    rest = peak_bytes - baseline_bytes - parts["mem_grads_bytes"] - parts["mem_optimizer_bytes"]
    return {
        "mem_other_bytes": baseline_bytes - parts["mem_weights_bytes"],
        "mem_activations_bytes": activations_bytes,
        "mem_transient_bytes": rest - activations_bytes if activations_bytes is not None else None,
    }


def _storage_key(tensor: torch.Tensor) -> tuple:
    to_local = getattr(tensor, "to_local", None)  # a sharded tensor (FSDP2): the shard this process holds
    tensor = to_local() if callable(to_local) else tensor
    return tensor.device.type, tensor.untyped_storage().data_ptr()


class SavedTensors:
    """Pack hook for torch.autograd.graph.saved_tensors_hooks: the bytes of the distinct storages autograd keeps for
    backward, less the model's own parameters and buffers (counted as weights) and autocast's low-precision copies
    of parameters (a cast weight is no activation). The tensors are returned as they are: nothing is copied."""

    def __init__(self, model):
        tensors = list(model.parameters()) + list(model.buffers())
        self.weights = {_storage_key(t) for t in tensors}
        self.by_shape: dict[tuple, list] = {}
        for t in tensors:
            if t.dim() in (1, 2) and t.is_floating_point():
                self.by_shape.setdefault(tuple(t.shape), []).append(t)
        self.storages: dict[tuple, int] = {}
        self.unreadable = 0  # saved tensors without a storage to read (n/a rather than a short count)

    def _weight_copy(self, tensor: torch.Tensor) -> bool:
        """A parameter cast to autocast's precision (as linear layers save it, or its transpose): same values in
        another dtype. A few leading values are compared first, so most tensors cost one small comparison."""
        if tensor.dim() not in (1, 2) or not tensor.is_floating_point():
            return False
        oriented = [(tensor, p) for p in self.by_shape.get(tuple(tensor.shape), [])]
        if tensor.dim() == 2:
            oriented += [(tensor.t(), p) for p in self.by_shape.get(tuple(tensor.shape)[::-1], [])]
        with torch.no_grad():
            for view, weight in oriented:
                if weight.dtype == view.dtype or weight.device != view.device:
                    continue
                head = (slice(0, 1), slice(0, 16)) if view.dim() == 2 else (slice(0, 16),)
                if torch.equal(view[head], weight[head].to(view.dtype)) and torch.equal(view, weight.to(view.dtype)):
                    return True
        return False

    def pack(self, tensor):
        try:
            key = _storage_key(tensor)
            if key not in self.weights and key not in self.storages and not self._weight_copy(tensor):
                self.storages[key] = tensor.untyped_storage().nbytes()
        except (RuntimeError, NotImplementedError, TypeError, AttributeError):
            self.unreadable += 1
        return tensor

    @property
    def total_bytes(self) -> int | None:
        return None if self.unreadable else sum(self.storages.values())


def _unpack(tensor):
    return tensor


def longest(dataset, columns=("input_ids", "attention_mask", "token_type_ids", "labels")) -> dict[str, int]:
    """Tokens in the longest example of each token column of a tokenized training set (per-example lists)."""
    lengths = {}
    for column in columns:
        if column in getattr(dataset, "column_names", []):
            values = dataset[column]
            if values and isinstance(values[0], list):
                lengths[column] = max(map(len, values))
    return lengths


PAD_VALUES = {"attention_mask": 0, "token_type_ids": 0, "labels": -100}  # input_ids: the tokenizer's pad id


class PadWindow:
    """A task collator whose batches for the given training steps (1-based) are padded to the longest training
    example, column by column, on the tokenizer's padding side: the memory window then holds the longest batch's
    peak. Padding is masked (attention mask 0, labels -100), so the loss is that of the unpadded batch."""

    def __init__(self, collate, lengths: dict[str, int], steps: range, pad_id: int | None, side: str = "right"):
        self.collate, self.lengths, self.steps, self.side = collate, lengths, steps, side
        self.values = {**PAD_VALUES, "input_ids": pad_id if pad_id is not None else 0}
        self.calls = 0  # one batch per step (no gradient accumulation): the n-th call is step n's batch

    def __call__(self, features):
        batch = self.collate(features)
        self.calls += 1
        if self.calls in self.steps:
            for key, length in self.lengths.items():
                value = batch.get(key)
                if isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape[1] < length:
                    extra = length - value.shape[1]
                    widths = (extra, 0) if self.side == "left" else (0, extra)
                    batch[key] = torch.nn.functional.pad(value, widths, value=self.values.get(key, 0))
        return batch


def _larger(a, b):
    """max() where a reader may return None (nothing to read)."""
    return b if a is None else a if b is None else max(a, b)


class _Sampler:
    """The largest reading of `read`, taken every SAMPLE_INTERVAL_S by a background thread while it runs (start,
    pause, resume, stop). Paused or stopped, no thread is left: a thread that wakes every 10 ms takes the GIL each
    time, and on a machine with more runnable threads than cores the main thread then waits whenever the scheduler
    parks the sampler holding the GIL. On 2 cores beside two other trials, a LoRA trial's timed steps ran at 0.665 of
    a plain loop's tokens/s while a paused sampler still woke every 10 ms, 0.953 with none (benchmarks/loop_overhead.py,
    minilm-l6, median of 5 pairs each)."""

    def __init__(self, read):
        self.read, self.peak, self.held = read, read(), None
        self._thread, self._halt = None, None  # both made by start()

    def start(self):
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._halt,), name="memory-sampler", daemon=True)
        self._thread.start()

    def _run(self, halt: threading.Event):
        while not halt.wait(SAMPLE_INTERVAL_S):
            self.peak = _larger(self.peak, self.read())

    def _end_thread(self) -> bool:
        """Stop the thread (False: none was running)."""
        if self._thread is None:
            return False
        self._halt.set()
        self._thread.join()
        self._thread = None
        return True

    def pause(self):
        self._end_thread()
        self.held = _larger(self.held, _larger(self.peak, self.read()))

    def resume(self):
        self.peak = self.read()
        self.start()

    def stop(self) -> int | None:
        if not self._end_thread():
            return self.held  # paused: nothing read since counts
        return _larger(self.held, _larger(self.peak, self.read()))


@functools.cache
def _libc():
    """The C library, or None where it cannot be loaded (found once per process: mallopt and malloc_trim share it)."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def _mallopt(mmap_threshold_bytes: int, trim_threshold_bytes: int) -> bool:
    """Fixed glibc malloc thresholds; False where the C library is not glibc (macOS, musl)."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold_bytes)) and bool(mallopt(M_TRIM_THRESHOLD,
                                                                                  trim_threshold_bytes))


_policy = [None]  # the malloc policy this process set last: EXACT, FAST, or None (never set, or not glibc)
EXACT, FAST = "exact", "fast"


def malloc_policy() -> str | None:
    """The malloc policy this process runs under now, as set here: EXACT (freed blocks of 1 MiB and more go back
    to the system at once), FAST (glibc's thresholds, freed blocks kept for reuse), None (never set, or not glibc)."""
    return _policy[0]


def trim_freed_memory() -> None:
    """Hand the freed pages the heap keeps back to the system now (glibc's malloc_trim; elsewhere nothing to do):
    under either policy, an RSS reading taken right after counts only live memory."""
    getattr(_libc(), "malloc_trim", lambda pad: 0)(0)


def return_freed_memory() -> bool:
    """Fixed malloc thresholds (glibc), so freed tensor memory leaves the RSS whatever the allocation history, and
    what the heap already holds free goes back now (malloc_trim): a process that ran an earlier trial under the
    fast policy keeps up to 64 MiB of freed heap, which the next trial's baseline would count and its training
    reuse unseen. False where the C library is not glibc (macOS, musl): RSS then carries the allocator's policy."""
    if not _mallopt(MALLOC_RETURN_BYTES, MALLOC_RETURN_BYTES):
        return False
    _policy[0] = EXACT
    trim_freed_memory()
    return True


def keep_freed_memory(trim: bool = True) -> bool:
    """glibc's fast policy, as its dynamic thresholds settle in a long training process: blocks up to 32 MiB from
    the heap and freed ones kept for reuse (trim at twice that, glibc's own rule). `trim=False`, the timed training
    steps' policy: the heap is never trimmed, so every step reuses the pages of the step before. Under glibc's trim
    rule, whether a step's freed activations go back to the kernel depends on what happens to sit at the top of the
    heap: on smollm2-135m with LoRA (batch 2 x 128 tokens) 5 of 8 timed steps handed them back and took ~50,000 page
    faults (~200 MB) in their next forward pass, the other 3 none, so a speed figure carried that layout's luck."""
    if not _mallopt(MALLOC_FAST_MMAP_BYTES, 2 * MALLOC_FAST_MMAP_BYTES if trim else MALLOC_NEVER_TRIM_BYTES):
        return False
    _policy[0] = FAST
    return True


def reset_high_water_mark() -> bool:
    """Set the kernel's RSS high-water mark (VmHWM) to the current RSS; False where /proc does not allow it."""
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def high_water_mark_bytes() -> int | None:
    try:
        match = re.search(r"^VmHWM:\s+(\d+) kB", PROC_STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


class MemoryTracker:
    """`with MemoryTracker(device) as mem: train()`; then mem.result() with the model and optimizer.

    Pass `mem.callbacks()` to the Trainer (saved activations measured on one step; with `window_steps` on CPU, the
    peak is read over the first `window_steps` steps, at least MIN_WINDOW_STEPS, and malloc's fast policy serves the
    rest) and wrap its collator in `mem.pad_window(...)` (the window's batches padded to the longest example).
    `window_steps` is the trial's warm-up steps, which no speed figure counts (module docstring)."""

    def __init__(self, device: torch.device, window_steps: int | None = None):
        self.device = torch.device(device)
        self.warmup_steps = window_steps
        self.window_steps = max(window_steps, MIN_WINDOW_STEPS) if window_steps is not None else None
        self.peak_bytes = self.baseline_bytes = None
        self.sampled_peak_bytes = self.hwm_peak_bytes = None
        self.nvml_peak_bytes = self.nvml_process_peak_bytes = self.reserved_peak_bytes = None
        self._sampler = self._process_sampler = None
        self._hwm_reset, self._held_peak_bytes = False, None  # the peak before a pause
        self._held_reserved_bytes = None
        self._stopped = False  # the window ended: nothing after it counts
        self.saved: SavedTensors | None = None  # the measured step's saved tensors
        self._saved_hooks = None
        self.padded: PadWindow | None = None

    @property
    def _windowed(self) -> bool:
        return self.window_steps is not None and self.device.type != "cuda"

    @property
    def measured_steps(self) -> int:
        """The first steps whose memory is read: the CPU window, else the warm-up steps."""
        return self.window_steps if self._windowed else self.warmup_steps or 0

    @property
    def untimed_steps(self) -> int:
        """The first steps no speed figure counts: the CPU window and the step that settles malloc after it
        (SETTLE_STEPS), else the warm-up steps."""
        return self.measured_steps + (SETTLE_STEPS if self._windowed else 0)

    @property
    def activations_step(self) -> int:
        """The training step (1-based) whose saved tensors are measured: the last one of the window or warm-up
        (padded, where any is), so the hooks' bookkeeping stays out of the timed steps."""
        return max(self.measured_steps, 1)

    def pad_window(self, collate, dataset, tokenizer) -> PadWindow:
        """`collate` with the batches of the untimed steps after the first (the FLOP-counted one) padded to the
        longest example of `dataset` (module docstring)."""
        self.padded = PadWindow(collate, longest(dataset), range(2, self.measured_steps + 1),
                                getattr(tokenizer, "pad_token_id", None), getattr(tokenizer, "padding_side", "right"))
        return self.padded

    def start_saved_activations(self, model) -> None:
        self.end_saved_activations()
        self.saved = SavedTensors(model)
        self._saved_hooks = torch.autograd.graph.saved_tensors_hooks(self.saved.pack, _unpack)
        self._saved_hooks.__enter__()

    def end_saved_activations(self) -> None:
        if self._saved_hooks is not None:
            self._saved_hooks.__exit__(None, None, None)
            self._saved_hooks = None

    def __enter__(self):
        if self.device.type == "cuda":
            gc.collect()
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()  # blocks cached before training (a probe's) would stay in NVML's reading
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline_bytes = torch.cuda.memory_allocated(self.device)
            nvml = nvml_memory_readers(self.device)
            if nvml:
                self._sampler, self._process_sampler = _Sampler(nvml[0]), _Sampler(nvml[1])
        else:
            process = psutil.Process()
            return_freed_memory()  # the trial set it before loading; here too for any other caller
            self._hwm_reset = reset_high_water_mark()
            self.baseline_bytes = process.memory_info().rss
            self._sampler = _Sampler(lambda: process.memory_info().rss)
        for sampler in (self._sampler, self._process_sampler):
            if sampler:
                sampler.start()
        return self

    def __exit__(self, *exc):
        self.end_saved_activations()
        sampled = self._sampler.stop() if self._sampler else None
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = _larger(self._held_peak_bytes, torch.cuda.max_memory_allocated(self.device))
            self.reserved_peak_bytes = _larger(self._held_reserved_bytes, torch.cuda.max_memory_reserved(self.device))
            self.nvml_peak_bytes = sampled
            self.nvml_process_peak_bytes = self._process_sampler.stop() if self._process_sampler else None
        else:
            self.sampled_peak_bytes = sampled
            hwm_now = None if self._stopped else high_water_mark_bytes()
            self.hwm_peak_bytes = _larger(self._held_peak_bytes, hwm_now) if self._hwm_reset else None
            # The kernel's mark sees spikes between two samples; the sampled peak stands where /proc is not there.
            self.peak_bytes = max(sampled, self.hwm_peak_bytes or 0)
        return False

    def _pause(self):
        for sampler in (self._sampler, self._process_sampler):
            if sampler:
                sampler.pause()
        if self.device.type == "cuda":
            self._held_peak_bytes = _larger(self._held_peak_bytes, torch.cuda.max_memory_allocated(self.device))
            self._held_reserved_bytes = _larger(self._held_reserved_bytes,
                                                torch.cuda.max_memory_reserved(self.device))
        elif self._hwm_reset:
            self._held_peak_bytes = _larger(self._held_peak_bytes, high_water_mark_bytes())

    def _resume(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self._hwm_reset:
            reset_high_water_mark()
        for sampler in (self._sampler, self._process_sampler):
            if sampler:
                sampler.resume()

    @contextlib.contextmanager
    def paused(self):
        """Work inside is left out of the peak (e.g. scoring checkpoints between training steps): the peak so far is
        kept, and after the block every reading (samplers, the kernel's mark, CUDA's peak) starts again from the
        memory in use then."""
        if self._stopped:
            yield
            return
        self._pause()
        try:
            yield
        finally:
            self._resume()

    def stop(self):
        """End of the window: the peak so far is the peak; malloc goes back to its fast policy, untrimmed."""
        if not self._stopped:
            self._pause()
            self._stopped = True
            keep_freed_memory(trim=False)

    def callbacks(self) -> list[TrainerCallback]:
        """The Trainer callbacks the tracker needs: the one that measures saved activations on one step, and on
        CPU the one that ends the window after `window_steps` steps (none on GPU, where the peak covers every
        step, or where no window was asked for)."""
        if self.window_steps is None or self.device.type == "cuda":
            return [_SavedActivations(self)]
        return [_SavedActivations(self), _Window(self)]

    @property
    def source(self) -> str:
        return "cuda_allocator" if self.device.type == "cuda" else "process_rss"

    def _activations(self) -> tuple[int | None, str | None]:
        """(saved activation bytes, why n/a)."""
        if self.saved is None:
            return None, f"training ended before step {self.activations_step}, whose saved tensors are measured"
        if self.saved.total_bytes is None:
            return None, f"{self.saved.unreadable} saved tensors had no storage to read"
        return self.saved.total_bytes, None

    def result(self, model, optimizer) -> dict:
        """Peak and its breakdown into parts that sum to it."""
        parts = breakdown(model, optimizer)
        activations, why = self._activations()
        padded = self.padded
        return {
            "peak_mem_bytes": self.peak_bytes,
            "mem_source": self.source,
            "mem_window_steps": self.window_steps if self._stopped else None,
            "mem_baseline_bytes": self.baseline_bytes,
            "peak_mem_sampled_bytes": self.sampled_peak_bytes,
            "peak_mem_hwm_bytes": self.hwm_peak_bytes,
            "peak_mem_nvml_bytes": self.nvml_peak_bytes,
            "peak_mem_nvml_process_bytes": self.nvml_process_peak_bytes,
            "peak_mem_reserved_bytes": self.reserved_peak_bytes,
            "mem_activations_step": self.activations_step if activations is not None else None,
            **({"mem_activations_na": why} if why else {}),
            "mem_padded_steps": len([s for s in padded.steps if s <= padded.calls]) if padded else None,
            "mem_padded_length_tokens": padded.lengths.get("input_ids") if padded else None,
            **parts,
            **split_peak(self.peak_bytes, self.baseline_bytes, parts, activations),
        }


def nvml_memory_readers(device: torch.device):
    """(device memory in use, all processes; this process's own use) as NVML reports them, or None where NVML is
    unavailable. The second reads None where NVML does not list this process (a container's own pid namespace)."""
    handle = nvml.handle(device)
    if handle is None:
        return None
    pynvml = nvml.module()
    return (lambda: pynvml.nvmlDeviceGetMemoryInfo(handle).used), (lambda: nvml.process_bytes(handle, os.getpid()))


class _SavedActivations(TrainerCallback):
    """Measures the tensors autograd saves over the forward and backward of the tracker's `activations_step`."""

    def __init__(self, memory: MemoryTracker):
        self.memory = memory

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step + 1 == self.memory.activations_step and model is not None:
            self.memory.start_saved_activations(model)

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.memory.end_saved_activations()

    def on_step_end(self, args, state, control, **kwargs):
        self.memory.end_saved_activations()


class _Window(TrainerCallback):
    """Ends a MemoryTracker's window after its `window_steps` training steps."""

    def __init__(self, memory: MemoryTracker):
        self.memory = memory

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.memory.window_steps:
            self.memory.stop()
