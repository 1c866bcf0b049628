"""The serving scenario's own timing loop against a hand-written set_adapter loop: same base, K adapters, request
stream, windows and threads. Prints the ratio of the seconds the scenario reports (what its throughput figures are
made of) to the wall seconds of the hand-written loop (target within 3%): the median over interleaved repeats of
each repeat's ratio.

python benchmarks/serve_overhead.py                         # minilm-l6, LoRA, K=8, round-robin (most switches)
python benchmarks/serve_overhead.py --model smollm2-135m --repeats 5
python benchmarks/serve_overhead.py --stream uniform --k 32

On a shared machine other processes take cores in bursts: both loops run in turn, several times, and the medians
are compared; the min-max spread printed beside them says how noisy the machine was.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import methods  # noqa: E402
from bench.serve import adapters, load, traffic  # noqa: E402
from bench.serve import config as serve_config  # noqa: E402
from bench.serve import host as hosts  # noqa: E402
from bench.trial import load_base  # noqa: E402


def hand_written(model, pool: dict, ids: list[int], names: list[str], batch_size: int) -> float:
    """The least a server can do: per window, per adapter in it, set_adapter and one forward; one clock around all."""
    started = time.perf_counter()
    for start in range(0, len(ids), batch_size):
        window = ids[start:start + batch_size]
        for adapter in dict.fromkeys(window):
            positions = torch.tensor([start + i for i, a in enumerate(window) if a == adapter])
            model.set_adapter(names[adapter])
            model(**{key: value.index_select(0, positions) for key, value in pool.items()})
    return time.perf_counter() - started


def scenario_loop(host, pool: dict, ids: list[int], batch_size: int) -> float:
    """The scenario's single-adapter serving of one stream; returns the seconds it reports (sum over windows)."""
    server = traffic.Server(host, "single", "cpu")
    _, seconds = traffic.serve_stream(server.window, pool, ids, batch_size)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--method", default="lora")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--stream", default="round-robin", choices=serve_config.STREAMS)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    cfg = serve_config.compose(f"model={args.model}", f"method={args.method}", f"serve.k={args.k}",
                               f"serve.requests={args.requests}", f"serve.batch_size={args.batch_size}")
    torch.set_num_threads(cfg.trial.train.threads or 1)
    base = load_base(cfg.trial)
    method = methods.get(args.method)
    method_cfg = method.build_config(cfg.trial.method.params)
    names = adapters.names(args.k)
    with tempfile.TemporaryDirectory() as work, torch.inference_mode():
        kind, tuned = adapters.host_kind(cfg, base.model, method, method_cfg, base.arch)
        paths = adapters.fresh(tuned, args.k, 0, cfg.serve.fresh_noise, Path(work))
        del tuned
        host = hosts.make(kind, base.model, method, method_cfg, base.arch)
        load.load_all(host, paths, names, base.device)
        pool = traffic.requests([r["text"] for r in base.data.test_rows], base.tokenizer, cfg.serve, base.device)
        ids = traffic.stream(args.stream, args.requests, args.k, cfg.serve.zipf_exponent, 0)
        scenario_loop(host, pool, ids, args.batch_size)  # warm-up of both paths
        hand_written(host.model, pool, ids, names, args.batch_size)
        ours, hand = [], []
        for repeat in range(args.repeats):  # alternate which goes first, so neither always follows the other
            first, second = (ours, hand) if repeat % 2 == 0 else (hand, ours)
            for results in (first, second):
                if results is ours:
                    ours.append(scenario_loop(host, pool, ids, args.batch_size))
                else:
                    hand.append(hand_written(host.model, pool, ids, names, args.batch_size))
    # each repeat's two runs follow each other, so they saw about the same load: the median of their ratios is
    # robust to the machine slowing down or speeding up between repeats
    paired = statistics.median(o / h for o, h in zip(ours, hand))
    ratio = statistics.median(ours) / statistics.median(hand)
    print(f"{args.model} {args.method} K={args.k} {args.stream}, {args.requests} requests in windows of "
          f"{args.batch_size}, {torch.get_num_threads()} thread(s), {args.repeats} interleaved repeats")
    for label, values in (("scenario", ours), ("hand-written", hand)):
        print(f"  {label:<13} seconds per stream: median {statistics.median(values):.4f} "
              f"(min {min(values):.4f}, max {max(values):.4f})")
    print(f"  ratio scenario / hand-written, median of paired repeats: {paired:.4f} "
          f"({'within' if abs(paired - 1) <= 0.03 else 'OUTSIDE'} 3%); of the medians: {ratio:.4f}; of the fastest "
          f"runs: {min(ours) / min(hand):.4f}")


if __name__ == "__main__":
    main()
