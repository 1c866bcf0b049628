"""A serving trial in the sweep's child process (bench.launch.isolation, `runner=run`): config file -> record.

Also what `python -m bench.launch.worker TRIAL_DIR` runs on a serving trial's folder (named in its trial_runner.txt).
Importing this module imports no torch: the sweep process imports it before deciding to fork its trials.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.launch.worker import CONFIG_NAME
from bench.results import record as records
from bench.serve import config as serve_config

NAME = "peft-bench-serve"


def run(folder: Path) -> None:
    """Read the trial's config from its folder, run it, write its record (bad input too: the sweep process reads
    it there) and print the summary."""
    # imported here, in the child: the scenario imports torch, which the sweep process must not before it forks
    from bench.serve import scenario

    cfg = serve_config.from_dict(json.loads((Path(folder) / CONFIG_NAME).read_text()))
    result = scenario.run(cfg)
    path = records.write(result, Path(folder))
    if result.status == records.FAILED and result.error["phase"] == "config":
        return  # bad input: the sweep process says so in one line and removes the record
    print(summary(result.to_dict(), path), flush=True)


def _ms(value) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


def _mib(value) -> str:
    return "n/a" if value is None else f"{value / 2**20:.2f} MiB"


def summary(record: dict, path: Path | None = None) -> str:
    """What ran, its status, and the headline figures (the record holds them all)."""
    who, m = record["identity"], record["metrics"]
    lines = [f"{NAME}: {who['method']} on {who['model']}, K={m.get('serve_k')}: {record['status'].upper()}"]
    if record.get("error"):
        lines.append(f"  {record['error']['phase']}: {record['error']['type']}: {record['error']['message']}")
    if record["status"] == records.OK:
        lines += [
            f"  load {m['load_s_p50'] * 1000:.1f} ms per adapter; {_mib(m['mem_per_adapter_bytes'])} resident per "
            f"adapter ({m['mem_source']}); {_mib(m['adapter_disk_bytes'])} on disk",
            f"  swap: set {_ms(m['swap_set_ms_p50'])}, hot-swap {_ms(m['swap_hotswap_ms_p50'])}, merge "
            f"{_ms(m['swap_merge_ms_p50'])}",
            "  round-robin p50 per request: " + ", ".join(
                f"{mode} {_ms(m.get(f'{mode}_round_robin_ms_p50'))}" for mode in ("mixed", "single", "merged"))
            + f", base {_ms(m['base_ms_p50'])}",
            f"  {m['serve_k']} full copies: {_mib(m.get('copies_mem_bytes'))} ({m.get('copies_source')})",
        ]
    if path:
        lines.append(f"  record: {path}")
    return "\n".join(lines)
