"""The cost of malloc's exact policy on CPU training: the same Trainer steps with freed blocks of 1 MiB and more
handed back to the kernel at once (the policy the memory window measures under, so RSS follows live tensors)
against glibc's fast policy (blocks up to 32 MiB kept for reuse: what the timed steps run under). Prints the
throughput ratio fast / exact; it is why the exact policy holds only over the warm-up window. Both policies are set
with mallopt in this one process, taking turns repetition by repetition.

python benchmarks/malloc_policy.py                    # lora and full on minilm-l6, 5 repeats
python benchmarks/malloc_policy.py --methods full --repeats 3 --steps 8
"""

from __future__ import annotations

from _common import arguments, build, configure, median, spread, timed_seconds

from bench.trackers.memory import keep_freed_memory, return_freed_memory


def main() -> None:
    args = arguments(__doc__, steps=10, warmup=2).parse_args()
    policies = {"exact": return_freed_memory, "fast": keep_freed_memory}
    ratios = []
    for method in args.methods:
        cfg = configure(args.model, method, args.steps, args.warmup, "cpu")
        ready = build(cfg)
        seconds = {name: [] for name in policies}
        for repeat in range(args.repeats):
            order = list(policies) if repeat % 2 == 0 else list(policies)[::-1]
            for name in order:
                if not policies[name]():
                    raise SystemExit("malloc_policy: mallopt is glibc's; this C library has no such policy to time")
                seconds[name].append(timed_seconds(cfg, ready, instrumented=False))
        ratio = median(seconds["exact"]) / median(seconds["fast"])  # throughput fast / exact
        ratios.append(ratio)
        print(f"{args.model} {method:>5}  exact {spread(seconds['exact'])} s  |  fast {spread(seconds['fast'])} s  |  "
              f"fast/exact throughput {ratio:.2f}", flush=True)
    print(f"malloc policy: the exact policy costs {1 - 1 / max(ratios):.0%} of a step's throughput at worst "
          f"(fast/exact {max(ratios):.2f})")


if __name__ == "__main__":
    main()
