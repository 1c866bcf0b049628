"""What a finished trial prints: one screen of its figures (the cost columns of the metric catalogue), and the one
line a failure gets."""

from __future__ import annotations

from pathlib import Path

from bench.results.metrics import METRICS, NA, number


def describe(identity: dict) -> str:
    """`lora on minilm-l6/bbc-topic, seed 0`: which trial, in every line that speaks of one."""
    return f"{identity['method']} on {identity['model']}/{identity['task']}, seed {identity['seed']}"


def failure_line(identity: dict, error: dict) -> str:
    return f"peft-bench: {describe(identity)}: FAILED [{error['phase']}] {error['type']}: {error['message']}"


def summary(record, path: Path | None = None) -> str:
    """What ran, its status, and each cost metric it measured, in catalogue order, with its unit."""
    record = record if isinstance(record, dict) else record.to_dict()
    identity, metrics, error = record["identity"], record["metrics"], record.get("error")
    lines = [f"peft-bench: {describe(identity)} ({identity['family']}): {record['status'].upper()}"]
    if error:
        lines.append(f"  {error['phase']}: {error['type']}: {error['message']}")
    for column, metric in METRICS.items():
        if metric.cost and column in metrics:  # absent: not applicable (merged latency where nothing merges)
            value = number(metric, metrics[column])
            unit = f" {metric.unit}" if metric.unit and value != NA else ""
            of = f" ({metrics[metric.context]})" if metrics.get(metric.context) else ""
            lines.append(f"  {metric.label:<20}{value}{unit}{of}")
    if path:
        lines.append(f"  record: {path}")
    return "\n".join(lines)
