"""The training peak's breakdown and its window: saved activations measured with saved-tensor hooks, the transient
rest, the window's batches padded to the longest example, and the GPU baseline taken on an emptied cache.

pytest tests/test_memory_window.py            (~30 s: tiny-bert)
pytest -m gpu tests/test_memory_window.py     (the GPU allocator and NVML, on a CUDA device)
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from bench import trial
from bench.trackers import memory
from bench.trackers.memory import MemoryTracker, PadWindow
from bench.launch.trial import run_trial
from tests.conftest import trial_config

PARTS = ("mem_weights_bytes", "mem_grads_bytes", "mem_optimizer_bytes", "mem_other_bytes", "mem_activations_bytes",
         "mem_transient_bytes")


def _measured_step(model, step) -> dict:
    """One training step as the Trainer runs it, with a tracker's callbacks around it: `step()` does forward and
    backward on the step whose saved tensors the tracker measures; the tracker's result."""
    with MemoryTracker("cpu", window_steps=2) as tracker:
        (saved, *_) = tracker.callbacks()
        state = SimpleNamespace(global_step=tracker.activations_step - 1)
        saved.on_step_begin(None, state, None, model=model)
        step()
        saved.on_pre_optimizer_step(None, state, None)
        saved.on_step_end(None, state, None)
    return tracker.result(model, None)


def _two_layers():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))


def test_saved_activations_are_the_tensors_kept_for_backward_not_the_weights():
    """Hand count: the first linear keeps its input (16 x 64 float32), ReLU its output, which the second linear
    keeps too (one storage); the weights the linears keep are weights, not activations."""
    model = _two_layers()
    result = _measured_step(model, lambda: model(torch.randn(16, 64)).sum().backward())
    assert result["mem_activations_bytes"] == 2 * 16 * 64 * 4
    assert result["mem_activations_step"] == 2


def test_autocasts_low_precision_weight_copies_are_not_activations():
    model = _two_layers()
    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(torch.randn(16, 64)).float().sum()
        loss.backward()

    result = _measured_step(model, step)
    assert result["mem_activations_bytes"] == 2 * 16 * 64 * 2  # the same two tensors in bfloat16


@pytest.fixture(scope="module")
def tiny_bert():
    ready = trial.setup(trial_config("model=tiny-bert", "method=lora"), with_probe=False)
    return ready.model.train()


def _saved_bytes(model, batch_size: int, length: int) -> int:
    ids = torch.randint(5, 100, (batch_size, length))
    labels = torch.zeros(batch_size, dtype=torch.long)
    return _measured_step(model, lambda: model(input_ids=ids, labels=labels).loss.backward())["mem_activations_bytes"]


def test_measured_activations_grow_with_batch_size_and_length(tiny_bert):
    base = _saved_bytes(tiny_bert, 4, 32)
    assert base > 0
    assert 1.8 < _saved_bytes(tiny_bert, 8, 32) / base < 2.2  # twice the rows: twice the saved tensors
    assert 1.8 < _saved_bytes(tiny_bert, 4, 64) / base < 3.0  # twice the length: twice, and attention's squares


def test_a_trials_parts_add_up_to_its_peak_with_activations_measured():
    record = run_trial(trial_config("model=tiny-bert", "method=lora", "train.warmup_steps=2"), progress=False)
    assert record.status == "ok", record.error
    m = record.metrics
    assert sum(m[p] for p in PARTS) == m["peak_mem_bytes"]
    assert m["mem_activations_bytes"] > 0 and m["mem_activations_step"] == 2
    assert m["mem_padded_steps"] == 1  # the window's second step; the first is the FLOP-counted one


class _Tokenizer:
    pad_token_id, padding_side = 0, "right"


def _collate(features):
    """Pads to the longest in the batch, as the task collators do."""
    width = max(len(f["input_ids"]) for f in features)
    pad = lambda values, fill: values + [fill] * (width - len(values))  # noqa: E731
    return {"input_ids": torch.tensor([pad(f["input_ids"], 0) for f in features]),
            "attention_mask": torch.tensor([pad([1] * len(f["input_ids"]), 0) for f in features]),
            "labels": torch.tensor([pad(f["labels"], -100) for f in features])}


def test_the_windows_batches_are_padded_to_the_longest_example_and_only_those():
    """Batches are padded to their own longest example; the window's steps after the first (the FLOP-counted one)
    take the longest of the training set, wherever it sits, so the window's peak is the longest batch's."""
    import datasets

    rows = [list(range(1, n + 1)) for n in (3, 4, 5, 40)]  # the long example is in no window batch
    dataset = datasets.Dataset.from_dict({"input_ids": rows, "attention_mask": [[1] * len(r) for r in rows],
                                          "labels": rows})
    tracker = MemoryTracker("cpu", window_steps=3)
    collate = tracker.pad_window(_collate, dataset, _Tokenizer())
    short = [{"input_ids": r, "labels": r} for r in rows[:2]]
    with tracker:
        widths = [collate(short)["input_ids"].shape[1] for _ in range(4)]
    assert widths == [4, 40, 40, 4]  # steps 2 and 3 of a 3-step window
    padded = collate.__class__(_collate, {"input_ids": 40, "attention_mask": 40, "labels": 40}, range(1, 2), 0)(short)
    assert padded["attention_mask"][:, 4:].eq(0).all() and padded["labels"][:, 4:].eq(-100).all()
    result = tracker.result(nn.Linear(1, 1), None)
    assert result["mem_padded_length_tokens"] == 40 and result["mem_padded_steps"] == 2


def test_padding_leaves_the_loss_as_it_was(tiny_bert):
    from transformers import DataCollatorWithPadding

    from bench.models import tiny  # noqa: F401 (tiny-bert's tokenizer is the model's own)

    ready_tokenizer = trial.load_base(trial_config("model=tiny-bert")).tokenizer
    features = [{"input_ids": [101, 7, 8, 102], "labels": 1}, {"input_ids": [101, 9, 102], "labels": 0}]
    collate = DataCollatorWithPadding(ready_tokenizer)
    plain = collate(features)
    padded = PadWindow(collate, {"input_ids": 16, "attention_mask": 16, "token_type_ids": 16}, range(1, 2),
                       ready_tokenizer.pad_token_id)(features)
    assert padded["input_ids"].shape == (2, 16)
    tiny_bert.eval()
    with torch.no_grad():
        torch.testing.assert_close(tiny_bert(**padded).loss, tiny_bert(**plain).loss, rtol=1e-4, atol=1e-5)
    tiny_bert.train()


class _CachingCuda:
    """torch.cuda's allocator as the tracker sees it: blocks freed by earlier work (a probe) stay reserved until
    empty_cache; NVML sees what is reserved plus the context."""

    CONTEXT = 300 * 2**20

    def __init__(self, allocated: int, cached: int):
        self.allocated, self.reserved = allocated, allocated + cached
        self.peak_reserved = self.reserved

    def empty_cache(self):
        self.reserved = self.allocated

    def reset_peak_memory_stats(self, *args):
        self.peak_reserved = self.reserved

    def install(self, monkeypatch):
        for name, value in (("synchronize", lambda *a: None), ("empty_cache", self.empty_cache),
                            ("reset_peak_memory_stats", self.reset_peak_memory_stats),
                            ("memory_allocated", lambda *a: self.allocated),
                            ("max_memory_allocated", lambda *a: self.allocated),
                            ("max_memory_reserved", lambda *a: self.peak_reserved)):
            monkeypatch.setattr(torch.cuda, name, value)
        monkeypatch.setattr(memory, "nvml_memory_readers",
                            lambda device: (lambda: self.reserved + self.CONTEXT, lambda: None))


def test_a_probe_cached_before_training_stays_out_of_the_gpu_peaks(monkeypatch):
    """QLoRA scores its quantized base on the GPU just before training; the blocks that probe freed stay reserved
    by the caching allocator, in NVML's reading, unless the cache is emptied before the baseline."""
    weights, probe_cache = 500 * 2**20, 2 * 2**30
    fake = _CachingCuda(allocated=weights, cached=probe_cache)
    fake.install(monkeypatch)
    monkeypatch.setattr(memory, "SAMPLE_INTERVAL_S", 3600.0)  # NVML read at start and stop only
    with MemoryTracker(torch.device("cuda", 0)) as tracker:
        pass
    result = tracker.result(nn.Linear(2, 2), None)
    assert result["peak_mem_nvml_bytes"] == weights + _CachingCuda.CONTEXT
    assert result["peak_mem_reserved_bytes"] == weights


@pytest.mark.gpu
def test_on_a_gpu_the_reserved_peak_and_nvml_leave_out_what_was_cached_before():
    device = torch.device("cuda", 0)
    probe = torch.ones(2**28, device=device)  # 1 GiB, freed: the caching allocator keeps it reserved
    del probe
    assert torch.cuda.memory_reserved(device) >= 2**30
    model = nn.Linear(1024, 1024).to(device)
    with MemoryTracker(device) as tracker:
        model(torch.randn(64, 1024, device=device)).sum().backward()
    result = tracker.result(model, None)
    assert 0 < result["peak_mem_reserved_bytes"] < 2**30
    if result["peak_mem_nvml_process_bytes"] is not None:
        assert result["peak_mem_nvml_process_bytes"] < 2**30 + result["peak_mem_reserved_bytes"]
