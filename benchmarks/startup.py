"""Process start to the first training step, with the model and tokenized data already cached. Every record
carries it as `startup_seconds` (measured from the trial process's creation time). Targets: minilm-l6 <= 3 s,
smollm2-135m <= 5 s. One warm-up run fills the caches first. Two figures per model:

- in a sweep: each trial is a process forked from the sweep process, which imported torch, transformers, peft
  and datasets once (bench/sweep/isolation.py); this is what every trial of every sweep pays, and what the targets are
  checked against;
- single run: one `peft-bench` command, which has to import those libraries itself (about 4 s of the figure on
  2 CPU cores; shown for reference).

The shared work a cold cache needs first (peak FLOP/s, the base model's probe score) runs in a process of its own
before the trial and is not part of the figure (`seconds_prepare` in the record).

python benchmarks/startup.py
python benchmarks/startup.py --models minilm-l6 --repeats 5
python benchmarks/startup.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import median, spread

TARGETS_S = {"minilm-l6": 3.0, "smollm2-135m": 5.0}
TRIAL = ["train.max_steps=4", "train.warmup_steps=1", "task.max_eval_samples=8", "train.latency_repeats=2",
         "train.measure_flops=false", "train.probe_samples=8"]


def run(model: str, results: Path, name: str, multirun_seeds: int = 0, device: str = "auto") -> list[float]:
    """startup_seconds of each trial of one command (a fresh sweep name: resume would reuse finished records)."""
    sweep = ["-m", f"seed=range({multirun_seeds})"] if multirun_seeds else []
    command = [sys.executable, "-m", "bench.cli", *sweep, f"model={model}", *TRIAL, f"results_dir={results}",
               f"sweep_name={name}", f"train.device={device}"]
    subprocess.run(command, check=True, capture_output=True)
    records = [json.loads(p.read_text()) for p in (results / name).rglob("record.json")]
    return [r["metrics"]["startup_seconds"] for r in records]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(TARGETS_S))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        results = Path(folder)
        worst = 0.0
        for model in args.models:
            target_s = TARGETS_S.get(model, 5.0)
            # the first run fills the caches (GGUF conversion, tokenized data, split, probes)
            run(model, results, f"{model}-warmup", device=args.device)
            in_sweep = run(model, results, f"{model}-sweep", multirun_seeds=args.repeats, device=args.device)
            single = [run(model, results, f"{model}-single{i}", device=args.device)[0] for i in range(args.repeats)]
            worst = max(worst, median(in_sweep) / target_s)
            print(f"{model:>14}: sweep trial start -> first step {spread(in_sweep)} s; single run {spread(single)} s; "
                  f"target {target_s} s; sweep median / target {median(in_sweep) / target_s:.2f}, "
                  f"single run {median(single) / target_s:.2f}", flush=True)
    print(f"start-up: worst median / target {worst:.2f} for sweep trials (target <= 1.00)")


if __name__ == "__main__":
    main()
