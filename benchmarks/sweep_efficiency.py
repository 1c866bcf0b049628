"""A sweep's wall time split into useful work (training, evaluation, latency, merging, storage, probes) and
fixed per-trial cost (process start, imports, loading, the sweep machinery). Target: fixed <= 20% of the sweep.

python benchmarks/sweep_efficiency.py                               # the quick sweep (~15 min on 2 cores)
python benchmarks/sweep_efficiency.py --overrides 'method=lora,full,bitfit'   # a subset of it
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

USEFUL_PHASES = ("train", "evaluate", "latency", "storage", "merge", "probe")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", default="quick")
    parser.add_argument("--overrides", nargs="*", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bench.cli", f"sweep={args.sweep}", f"results_dir={folder}",
                        *args.overrides], check=True, stdout=subprocess.DEVNULL)
        wall_s = time.perf_counter() - started
        records = [json.loads(p.read_text()) for p in Path(folder).rglob("record.json")]
    useful_s = sum(r["metrics"].get(f"seconds_{phase}", 0.0) for r in records for phase in USEFUL_PHASES)
    fixed_s = wall_s - useful_s
    print(f"{len(records)} trials in {wall_s:,.0f} s: useful {useful_s:,.0f} s, fixed {fixed_s:,.0f} s "
          f"({fixed_s / max(len(records), 1):.1f} s per trial)")
    print(f"sweep efficiency: fixed cost {fixed_s / wall_s:.1%} of the sweep (target <= 20%)")


if __name__ == "__main__":
    main()
