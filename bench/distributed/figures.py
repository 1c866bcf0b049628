"""Per-rank figures of a distributed trial and the group's, as record metrics.

Each rank measures itself with the trial's own trackers (bench.trackers.memory around training, the throughput
callback listening to it); the breakdown counts the tensors the rank holds: under FSDP the local shards of its
DTensors (bench.trackers.memory.tensor_bytes), so weights, gradients and optimizer state read about 1/nproc of the
whole. Rank 0 gathers every rank's figures (torch.distributed.all_gather_object) and writes them as
`<metric>_rank<i>` beside the group's figures.

Energy: each rank reads its own device's counter over the phases every rank runs (load to train); the group's figure
sums every device once. Each GPU is its own (NVML, by UUID); ranks on one host share its CPU packages (RAPL), so a
host counts once (the largest of its ranks' readings: their phases overlap in time). Rank 0's GPU alone, divided by
every rank's tokens, read tokens per joule about nproc times too high.
"""

from __future__ import annotations

PER_RANK = ("peak_mem_bytes", "mem_weights_bytes", "mem_grads_bytes", "mem_optimizer_bytes",
            "mem_activations_bytes", "mem_transient_bytes", "train_tokens_per_s", "comm_share", "comm_seconds",
            "comm_exposed_seconds")
PER_RANK_GPU = ("peak_mem_nvml_bytes", "peak_mem_nvml_process_bytes")
BREAKDOWN = ("mem_baseline_bytes", "mem_weights_bytes", "mem_other_bytes", "mem_grads_bytes", "mem_optimizer_bytes",
             "mem_activations_bytes", "mem_transient_bytes", "peak_mem_sampled_bytes", "peak_mem_hwm_bytes",
             "peak_mem_nvml_bytes", "peak_mem_nvml_process_bytes")


def group_metrics(per_rank: list[dict], kind: str) -> dict:
    """Record metrics of the whole group from each rank's figures (index = rank)."""
    world = len(per_rank)
    metrics = {"world_size": world, "distributed": kind}
    gpu = [name for name in PER_RANK_GPU if any(f.get(name) is not None for f in per_rank)]  # NVML: GPU only
    for i, figures in enumerate(per_rank):
        metrics.update({f"{name}_rank{i}": figures.get(name) for name in (*PER_RANK, *gpu)})
    peaks = [f["peak_mem_bytes"] for f in per_rank]
    top = per_rank[peaks.index(max(peaks))]  # the breakdown of the rank that set the peak, so its parts add up
    metrics.update({name: top.get(name) for name in BREAKDOWN})
    metrics.update(peak_mem_bytes=max(peaks), peak_mem_rank=peaks.index(max(peaks)), mem_source=top["mem_source"])
    metrics.update(_speed(per_rank))
    shares = [f.get("comm_share") for f in per_rank if f.get("comm_share") is not None]
    metrics["comm_share"] = max(shares) if shares else None
    metrics.update(group_energy(per_rank))
    return metrics


def group_energy(per_rank: list[dict]) -> dict:
    """energy_joules_<phase> of the group's devices, each counted once, and energy_source; every phase n/a where a
    rank had no readable counter (a partial sum would read low), {} where none had."""
    keys = [f.get("energy_key") for f in per_rank]
    if all(key is None for key in keys):
        return {}
    phases = sorted({phase for f in per_rank for phase in f.get("energy_joules_by_phase") or {}})
    if None in keys:
        return {**{f"energy_joules_{phase}": None for phase in phases},
                "energy_source": f"n/a: rank {keys.index(None)} has no readable energy counter"}
    per_device: dict[str, dict] = {}
    for key, figures in zip(keys, per_rank):
        kept = per_device.setdefault(key, {})
        for phase, joules in (figures.get("energy_joules_by_phase") or {}).items():
            if joules is not None:
                kept[phase] = max(kept.get(phase, 0.0), joules)
    metrics = {}
    for phase in phases:
        seen = [device[phase] for device in per_device.values() if phase in device]
        metrics[f"energy_joules_{phase}"] = round(sum(seen), 3) if seen else None
    for i, figures in enumerate(per_rank):
        metrics[f"energy_joules_train_rank{i}"] = (figures.get("energy_joules_by_phase") or {}).get("train")
    counted = "GPU" if per_rank[0].get("energy_source", "").startswith("nvml") else "host"
    plural = "s" if len(per_device) > 1 else ""
    metrics["energy_source"] = f"{per_rank[0].get('energy_source')}, summed over {len(per_device)} {counted}{plural}"
    return metrics


def _speed(per_rank: list[dict]) -> dict:
    """The group's speed: every rank's real tokens over the slowest rank's timed seconds (the step ends when the last
    rank's does); steps and losses are rank 0's (ranks step together; the loss is rank 0's batch, as the Trainer
    logs it)."""
    first = per_rank[0]
    speed = {k: first.get(k) for k in ("startup_seconds", "train_steps", "train_timed_steps", "final_loss",
                                       "first_loss")}
    seconds = max(f["train_seconds"] for f in per_rank)
    timed_tokens = sum((f["train_tokens_per_s"] or 0) * f["train_seconds"] for f in per_rank)
    timed_samples = sum((f["train_samples_per_s"] or 0) * f["train_seconds"] for f in per_rank)
    flops = [f.get("train_flops") for f in per_rank]
    rates = [f.get("train_flops_per_s") for f in per_rank]
    speed.update(
        train_seconds=seconds,
        train_seconds_all_steps=max(f["train_seconds_all_steps"] for f in per_rank),
        train_tokens=sum(f["train_tokens"] for f in per_rank),
        train_padded_tokens=sum(f["train_padded_tokens"] for f in per_rank),
        train_tokens_per_s=timed_tokens / seconds if seconds else None,
        train_samples_per_s=timed_samples / seconds if seconds else None,
        train_flops=sum(flops) if None not in flops else None,
        train_flops_per_s=sum(r * f["train_seconds"] for r, f in zip(rates, per_rank)) / seconds
        if None not in rates and seconds else None,
    )
    return speed
