"""One trial's training with every tracker (throughput listener with its FLOP-counted step, token-counting
collator, memory sampler thread and, on CPU, malloc's exact policy over the warm-up window) against the same
Trainer run bare. Prints the throughput ratio over the same timed steps (target: trackers cost <= 3%) and the CPU
the memory sampler thread uses (it must not steal a core).

python benchmarks/instrumentation_overhead.py                 # lora and full on minilm-l6, 5 repeats
python benchmarks/instrumentation_overhead.py --model smollm2-135m --methods lora
"""

from __future__ import annotations

import time

from _common import arguments, build, configure, median, spread, timed_seconds

from bench.trackers.memory import MemoryTracker


def sampler_cpu_fraction(seconds: float = 3.0) -> float:
    """CPU time the memory sampler thread uses while the main thread sleeps, as a fraction of one core."""
    started = time.process_time()
    with MemoryTracker("cpu"):
        time.sleep(seconds)
    return (time.process_time() - started) / seconds


def main() -> None:
    parser = arguments(__doc__, steps=15, warmup=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    ratios = []
    for method in args.methods:
        cfg = configure(args.model, method, args.steps, args.warmup, args.device)
        ready = build(cfg)
        bare, tracked = [], []
        for repeat in range(args.repeats):
            runs = [(bare, False), (tracked, True)]
            for results, instrumented in runs if repeat % 2 == 0 else runs[::-1]:
                results.append(timed_seconds(cfg, ready, instrumented))
        ratio = median(bare) / median(tracked)  # throughput with trackers / throughput without
        ratios.append(ratio)
        print(f"{args.model} {method:>5}  bare {spread(bare)} s  |  all trackers {spread(tracked)} s  |  "
              f"throughput ratio {ratio:.3f}", flush=True)
    print(f"memory sampler thread: {sampler_cpu_fraction():.2%} of one core")
    print(f"instrumentation overhead: worst throughput ratio {min(ratios):.3f} "
          f"(cost {1 - min(ratios):.1%}, target <= 3%)")


if __name__ == "__main__":
    main()
