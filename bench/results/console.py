"""What a finished trial prints: one screen of its figures (the cost columns of the metric catalogue) for a single
run, one line for each trial of a sweep (24 trials must not bury each other), and the one line a failure gets."""

from __future__ import annotations

from pathlib import Path

from bench.results.metrics import METRICS, NA, is_na, number


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
    lines += _ranks(metrics)
    if path:
        lines.append(f"  record: {path}")
    return "\n".join(lines)


def _ranks(metrics: dict) -> list[str]:
    """A distributed trial's peak of every rank (the figures above are the highest rank's, and the group's)."""
    size = metrics.get("world_size") or 1
    if size < 2:
        return []
    peaks = " / ".join(_with_unit("peak_mem_bytes", metrics.get(f"peak_mem_bytes_rank{rank}")) for rank in range(size))
    return [f"  {'ranks':<20}{size}: peak {peaks} (memory above: rank {metrics.get('peak_mem_rank', NA)}'s)"]


def trial_line(record, name: str) -> str:
    """A sweep trial in one line: its folder name, status, quality with its 95% interval, peak memory and train
    time (`ok, accuracy 0.916 (95% 0.886-0.939, n=419), peak 756.0 MiB, train 95.2 s`); a failure or skip says why."""
    record = record if isinstance(record, dict) else record.to_dict()
    metrics, error = record["metrics"], record.get("error")
    head = f"peft-bench: {name}: {record['status']}"
    if error:
        return f"{head} [{error['phase']}] {error['type']}: {error['message']}"
    return ", ".join([head, _quality(metrics), f"peak {_value('peak_mem_bytes', metrics)}",
                      f"train {_value('train_seconds', metrics)}"])


def _quality(metrics: dict) -> str:
    low, high, count = (metrics.get(key) for key in ("quality_ci_low", "quality_ci_high", "n_eval"))
    interval = NA if is_na(low) or is_na(high) else f"{number('quality', low)}-{number('quality', high)}"
    items = f", n={count}" if count else ""
    return f"{metrics.get('quality_metric') or 'quality'} {_value('quality', metrics)} (95% {interval}{items})"


def _value(column: str, metrics: dict) -> str:
    return _with_unit(column, metrics.get(column))


def _with_unit(column: str, raw) -> str:
    """A value of a catalogue column as printed, with its unit (none after n/a)."""
    metric = METRICS[column]
    value = number(metric, raw)
    return f"{value} {metric.unit}" if metric.unit and value != NA else value
