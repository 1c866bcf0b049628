"""peft-bench-report: a sweep's trials -> reports/<sweep>/ (tables, plots, report.md, report.html).

    peft-bench-report results/quick
    peft-bench-report results/tradeoffs --out /tmp/report --max-memory 8GiB --max-storage 50MB --min-quality 0.8
    peft-bench-report results/tradeoffs --latency-from results/latency     (latency findings from trials timed alone)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.report.recommend import Budget, parse_size


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="peft-bench-report", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("sweep", type=Path, help="sweep folder (results/<sweep>) or a trials.csv / trials.parquet file")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: reports/<sweep name>)")
    p.add_argument("--latency-from", type=Path, default=None, metavar="SWEEP",
                   help="a sweep timed one trial at a time (peft-bench sweep=latency): its trials give the latency "
                        "findings")
    budget = p.add_argument_group("budget for the recommendation (default: no limits)")
    budget.add_argument("--max-memory", type=parse_size, help="peak training memory, e.g. 8GiB, 512M")
    budget.add_argument("--max-storage", type=parse_size, help="checkpoint bytes per task, e.g. 50MB")
    budget.add_argument("--min-quality", type=float, help="the task's primary metric, e.g. 0.8")
    budget.add_argument("--max-latency-ms", type=float, help="serving latency p50 (merged where the method merges)")
    budget.add_argument("--min-throughput", type=float, help="training tokens/s")
    budget.add_argument("--max-forgetting", type=float, help="relative probe loss, e.g. 0.05")
    budget.add_argument("--max-trainable-fraction", type=float, help="e.g. 0.01 for 1%%")
    p.add_argument("--storage-n", type=int, nargs="+", default=[1, 10, 100], help="task counts of the storage table")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for given in (args.sweep, args.latency_from):
        if given is not None and not given.exists():
            print(f"peft-bench-report: no sweep folder or trials table at {given}", file=sys.stderr)
            return 2
    from bench.report.build import build_report  # heavy imports (pandas, matplotlib) after the arguments check

    budget = Budget(max_memory=args.max_memory, max_storage=args.max_storage, min_quality=args.min_quality,
                    max_latency_ms=args.max_latency_ms, min_throughput=args.min_throughput,
                    max_forgetting=args.max_forgetting, max_trainable_fraction=args.max_trainable_fraction)
    html_path = build_report(args.sweep, args.out, budget, tuple(sorted(set(args.storage_n))), args.latency_from)
    print(f"peft-bench-report: {html_path} (and report.md, tables/, plots/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
