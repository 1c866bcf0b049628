"""The metric catalogue: every measured column with its label, unit, which direction is better, how a value
prints, and where it belongs (the report's cost table, the columns every finished trial must carry).

One row per metric here; the console summary, the report's tables, plots and recommendation, and the tests all
read it, so a new metric is its tracker (a module of bench/trackers/ registered through bench.trackers.protocol,
which the trial runs without naming it) and one row here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

NA = "n/a"  # what a missing value prints as, everywhere: never 0


@dataclass(frozen=True)
class Metric:
    column: str  # column of the trials table (or one the loader derives)
    label: str  # short header
    unit: str  # "" when unitless
    kind: str  # bytes | params | fraction | score | ms | rate | relative | seconds | flops
    better: str | None  # "max", "min", or None where neither is better (e.g. a breakdown part)
    help: str = ""  # one line for the README
    cost: bool = False  # a column of the report's cost table (and of the console summary), in catalogue order
    required: bool = False  # every `ok` trial record carries a value, or says why not (quality: quality_na_reason)
    context: str = ""  # the text column that says what the value is of (quality -> quality_metric)

    @property
    def axis_label(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label

    @property
    def higher_is_better(self) -> bool | None:
        return {"max": True, "min": False}.get(self.better)


M = Metric
METRICS: dict[str, Metric] = {m.column: m for m in [
    M("trainable_params", "trainable params", "", "params", "min", "parameters the optimizer updates",
      cost=True, required=True),
    M("trainable_fraction", "trainable", "%", "fraction", "min", "trainable params / total params of the tuned model",
      cost=True, required=True),
    M("total_params", "total params", "", "params", None, "parameters of the model with the method applied",
      required=True),
    M("peak_mem_bytes", "peak memory", "MiB", "bytes", "min",
      "peak memory of the training phase: CUDA allocator peak on GPU, sampled process RSS on CPU",
      cost=True, required=True, context="mem_source"),
    M("mem_weights_bytes", "weights", "MiB", "bytes", None, "bytes of all parameters and buffers",
      cost=True, required=True),
    M("mem_other_bytes", "runtime/other", "MiB", "bytes", None,
      "CPU only: RSS before training minus the weights (Python runtime, libraries, data)", cost=True),
    M("mem_grads_bytes", "gradients", "MiB", "bytes", None, "bytes of the gradients of trainable parameters",
      cost=True, required=True),
    M("mem_optimizer_bytes", "optimizer", "MiB", "bytes", None, "bytes of optimizer state (AdamW: two moments)",
      cost=True, required=True),
    M("mem_activations_bytes", "activations", "MiB", "bytes", None,
      "measured: tensors autograd saves for backward over one training step, weights left out",
      cost=True, required=True),
    M("mem_transient_bytes", "transient", "MiB", "bytes", None,
      "the rest of the peak: batch, logits, activation gradients, autocast copies, optimizer temporaries, "
      "fragmentation", cost=True),
    M("peak_mem_reserved_bytes", "reserved peak", "MiB", "bytes", None,
      "GPU only: the CUDA caching allocator's reserved peak (torch.cuda.max_memory_reserved), cache emptied first"),
    M("train_tokens_per_s", "throughput", "tokens/s", "rate", "max", "training tokens per second, warm-up excluded",
      cost=True, required=True),
    M("train_samples_per_s", "samples/s", "samples/s", "rate", "max", "training samples per second, warm-up excluded",
      required=True),
    M("train_seconds", "train time", "s", "seconds", "min", "wall time of the timed training steps", required=True),
    M("mfu", "MFU", "%", "fraction", "max",
      "model FLOPs utilization: measured training FLOP/s over the device's peak (n/a where the peak is unknown)",
      cost=True),
    M("train_flops", "train FLOPs", "FLOP", "flops", None, "FLOPs of training, from torch.utils.flop_counter",
      required=True),
    M("latency_ms_p50", "latency", "ms", "ms", "min", "median inference latency of a fixed batch, method active",
      cost=True, required=True),
    M("latency_ms_p90", "latency p90", "ms", "ms", "min", "90th percentile of the same latency", required=True),
    M("latency_ms_p50_merged", "latency merged", "ms", "ms", "min",
      "median inference latency after merging the method into the weights (n/a: the method cannot merge)", cost=True),
    M("latency_repeats_run", "latency repeats", "", "params", None,
      "timed passes per model: stopped once the median's 95% interval spans 5% of it, at most train.latency_repeats"),
    M("ttft_ms_p50", "time to first token", "ms", "ms", "min",
      "generation tasks: median time from one prompt in to its first greedy token out (the prefill), method active"),
    M("decode_ms_per_token_p50", "decode per token", "ms", "ms", "min",
      "generation tasks: median time per greedy token after the first, over decode_new_tokens new tokens"),
    M("ttft_ms_p50_merged", "TTFT merged", "ms", "ms", "min",
      "time to first token after merging (n/a: the method cannot merge, or its merge check failed)"),
    M("decode_ms_per_token_p50_merged", "decode per token merged", "ms", "ms", "min",
      "decode time per token after merging (n/a: the method cannot merge, or its merge check failed)"),
    M("decode_repeats_run", "decode repeats", "", "params", None,
      "timed greedy decodes per model, stopped as latency repeats are, at most 10"),
    M("concurrent_trials", "trials at once", "", "params", None,
      "trials the sweep's launcher ran at once (1: one at a time; n/a: a launcher that does not fix it, Ray)"),
    M("timed_alone", "timed alone", "", "score", None,
      "1: one trial at a time and other processes under 15% of the CPU over training and latency; speed and "
      "latency verdicts come only from these"),
    M("cpu_share_others_train", "others' CPU in training", "%", "fraction", "min",
      "share of the machine's CPU time other processes took while the trial trained (per phase: _<phase>)"),
    M("cpu_share_others_latency", "others' CPU in latency", "%", "fraction", "min",
      "share of the machine's CPU time other processes took while latency was timed"),
    M("load_avg_1m_train", "load in training", "", "score", "min",
      "1-minute load average at the end of training (per phase: load_avg_1m_<phase>)"),
    M("load_avg_1m_latency", "load in latency", "", "score", "min", "1-minute load average at the end of latency"),
    M("checkpoint_bytes", "checkpoint", "MiB", "bytes", "min", "bytes stored per task: the adapter, or the whole model",
      cost=True, required=True),
    M("forgetting", "forgetting", "", "relative", "min",
      "relative loss of a probe the task never trained on (0: nothing forgotten, 0.1: 10% worse, < 0: better)",
      cost=True, required=True, context="forgetting_probe"),
    M("probe_before", "probe before", "", "score", None, "the forgetting probe's score on the base model",
      required=True),
    M("probe_after", "probe after", "", "score", None, "the forgetting probe's score on the fine-tuned model",
      required=True),
    M("quality", "quality", "", "score", "max", "the task's primary metric on held-out data (quality_metric); n/a "
      "with quality_na_reason where a generation failed its first-token check",
      cost=True, required=True, context="quality_metric"),
    M("final_loss", "final loss", "", "score", "min", "training loss at the last step", required=True),
    M("final_grad_norm", "final grad norm", "", "score", None, "gradient norm before clipping at the last logged step"),
    # distributed trials (docs/distributed.md); per-rank columns `<metric>_rank<i>` carry the unit of <metric>
    M("world_size", "processes", "", "params", None, "processes the trial ran on (train.nproc; 1 unless distributed)"),
    M("comm_share", "communication", "%", "fraction", "min",
      "share of a profiled training step the slowest rank waited on collectives no compute covered (n/a: one "
      "process, or no step to profile)"),
    M("gathered_max_abs_diff", "gather error", "", "score", "min",
      "FSDP: largest difference between the sharded model's and the gathered model's outputs on a test batch"),
]}

QUALITY_METRICS = ("accuracy", "f1_macro", "rouge1", "rouge2", "rougeL")
QUALITY_NAMES = {"accuracy": "acc", "f1_macro": "macro-F1", "rouge1": "ROUGE-1", "rouge2": "ROUGE-2",
                 "rougeL": "ROUGE-L"}
QUALITY_LONG = {**QUALITY_NAMES, "accuracy": "accuracy"}
for _name in QUALITY_METRICS:
    METRICS[_name] = Metric(_name, QUALITY_NAMES[_name], "", "score", "max", f"{_name} on held-out data")

# The parts that stack up to the peak: byte columns of the cost table that are neither better nor worse.
MEMORY_PARTS = [c for c, m in METRICS.items() if m.kind == "bytes" and m.cost and m.better is None]
MIB = 1024**2


def is_na(value) -> bool:
    if value is None:
        return True
    try:
        return bool(math.isnan(value))
    except TypeError:
        return False


def human_bytes(value: float, digits: int = 1) -> str:
    """Binary units: 1.5 GiB, 312.0 KiB."""
    if is_na(value):
        return NA
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(value) >= size:
            return f"{value / size:,.{digits}f} {unit}"
    return f"{value:,.0f} B"


def human_params(value: float) -> str:
    """LoRA-paper style: 125.0M, 0.3M, 9.6K."""
    if is_na(value):
        return NA
    if abs(value) >= 1e9:
        return f"{value / 1e9:.2f}B"
    if abs(value) >= 1e5:
        return f"{value / 1e6:.1f}M" if abs(value) >= 1e6 else f"{value / 1e6:.2f}M"
    if abs(value) >= 1e3:
        return f"{value / 1e3:.1f}K"
    return f"{value:.0f}"


def number(metric: Metric | str, value: float) -> str:
    """One value in the metric's display unit, without the unit (headers carry it)."""
    metric = METRICS[metric] if isinstance(metric, str) else metric
    if is_na(value):
        return NA
    if metric.kind == "bytes":  # MiB; below 1 MiB three significant digits, so a small adapter never reads 0.0
        mib = value / MIB
        return f"{mib:,.1f}" if abs(mib) >= 1 or mib == 0 else f"{mib:.3g}"
    if metric.kind == "params":
        return human_params(value)
    if metric.kind == "fraction":
        return f"{100 * value:.3g}"
    if metric.kind in ("ms", "rate", "seconds"):
        return f"{value:,.1f}" if abs(value) < 1e4 else f"{value:,.0f}"
    if metric.kind == "flops":
        return f"{value:.2e}"
    if metric.kind == "relative":  # a collapsed model's perplexity rise reads 1e13: three digits, not fourteen
        return f"{value:+.3f}" if abs(value) < 1e4 else f"{value:+.3g}"
    return f"{value:.3f}"
