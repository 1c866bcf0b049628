"""The harness's training loop against a minimal hand-written PyTorch loop: same model, method, batches,
sequence length, optimizer (fused AdamW), schedule (linear), clipping, train mode (dropout on) and threads.

Both arms compute throughput the same way: real tokens of the timed steps over the seconds of the timed steps, and
both leave out the same first steps (trial.untimed_steps: warm-up, the FLOP-counted step, on CPU the memory window).
The harness arm is the trial's own training (trial.train: Trainer, throughput listener, memory tracker with its
window, FLOP-counted first step) and its figure is the one a record carries (`train_tokens_per_s`). The hand loop
runs under the malloc policy the harness's timed steps run under after the window: glibc's fast thresholds, the heap
never trimmed (under glibc's own trim rule, whether a step's freed activations go back to the kernel, and are
faulted in again by the next step, depends on the heap's layout, which differs between the arms). Pairs are
interleaved, their order alternating; the ratio printed is the median over pairs of harness / hand loop (target >=
0.97). Beside it, the same ratio from the CPU seconds the process spent in the timed steps (all its threads): on a
machine shared with other work the wall clock measures the scheduler as much as the loop, and the CPU ratio is what
the harness itself costs.

python benchmarks/loop_overhead.py                                    # full + lora on minilm-l6 and smollm2-135m
python benchmarks/loop_overhead.py --models minilm-l6 --repeats 5 --threads 1
python benchmarks/loop_overhead.py --models smollm2-135m --threads 1 train.batch_size=2   # config overrides last
python benchmarks/loop_overhead.py --device cuda                      # on a GPU (bf16 autocast, fp32 weights)
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

import torch
from _common import StepClock, build, configure, spread

from bench import tasks, trial
from bench.trackers.memory import keep_freed_memory


def minor_faults() -> int:
    """Minor page faults of this process so far: each is a fresh page the kernel zeroes, which malloc's trimming
    of freed activations makes the next step take again."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def harness_tokens_per_s(cfg, ready) -> tuple[float, float, float]:
    """The trial's own training loop: (its own figure, tokens per CPU second, minor page faults per token), over
    the timed steps."""
    untimed = trial.untimed_steps(cfg, ready.device)
    clock = StepClock(untimed, clock=time.process_time)  # CPU seconds, every thread
    faults = StepClock(untimed, clock=minor_faults)
    figures = trial.train(cfg, ready, progress=False, listeners=[clock, faults]).speed.result()
    tokens = figures["train_tokens_per_s"] * figures["train_seconds"]
    return figures["train_tokens_per_s"], tokens / clock.total, faults.total / tokens


def reference_tokens_per_s(cfg, ready) -> tuple[float, float, float]:
    """A minimal loop written by hand, the lower bound of what any harness can cost: (tokens per second, tokens per
    CPU second, minor page faults per token), over the timed steps."""
    model, device, train = ready.model, ready.device, cfg.train
    untimed = trial.untimed_steps(cfg, device)
    if device.type == "cpu":
        keep_freed_memory(trim=False)
    loader = torch.utils.data.DataLoader(ready.data.train, batch_size=train.batch_size, shuffle=True,
                                         collate_fn=tasks.collator(cfg.task.kind, ready.tokenizer),
                                         generator=torch.Generator().manual_seed(cfg.seed))
    trainable = [p for p in model.parameters() if p.requires_grad]
    # fused AdamW, as the Trainer's default (adamw_torch_fused): the for-loop AdamW would make this reference
    # slower than the harness on full fine-tuning, and the ratio flattering
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=train.weight_decay, fused=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / train.max_steps)
    # The trial's precision: float32 weights, bf16/fp16 autocast (fp16 with a gradient scaler, as the Trainer does)
    scaler = torch.amp.GradScaler(device.type, enabled=trial.precision(cfg, device) == "fp16")
    model.train()  # from_pretrained leaves a model in eval mode: without this, dropout would be off here only
    seconds, cpu_seconds, tokens, faults = 0.0, 0.0, 0, 0
    batches = iter(loader)
    for step in range(train.max_steps):
        batch = {k: v.to(device) for k, v in next(batches).items()}
        if device.type == "cuda":
            torch.cuda.synchronize()
        started, cpu_started, faults_started = time.perf_counter(), time.process_time(), minor_faults()
        with trial.autocast(cfg, device):
            loss = model(**batch).loss
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        if train.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(trainable, train.max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= untimed:
            seconds += time.perf_counter() - started
            cpu_seconds += time.process_time() - cpu_started
            faults += minor_faults() - faults_started
            tokens += int(batch["attention_mask"].sum())
    return tokens / seconds, tokens / cpu_seconds, faults / tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["minilm-l6", "smollm2-135m"])
    parser.add_argument("--methods", nargs="+", default=["lora", "full"])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved pairs")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. train.batch_size=2 (after the sizes)")
    args = parser.parse_args()
    extra = ([f"train.threads={args.threads}"] if args.threads else []) + args.overrides
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    ratios = {}
    for model in args.models:
        for method in args.methods:
            cfg = configure(model, method, args.steps, args.warmup, args.device, extra)
            ready = build(cfg)
            harness_tokens_per_s(cfg, ready), reference_tokens_per_s(cfg, ready)  # untimed: a process's first
            # training pays for lazy initialisation and heap growth, which a trial's warm-up steps absorb
            harness, reference = [], []
            for repeat in range(args.repeats):  # interleaved, alternating order: drift hits both sides alike
                runs = [(harness, harness_tokens_per_s), (reference, reference_tokens_per_s)]
                for results, run in runs if repeat % 2 == 0 else runs[::-1]:
                    results.append(run(cfg, ready))
            pairs = [h[0] / r[0] for h, r in zip(harness, reference)]
            cpu_pairs = [h[1] / r[1] for h, r in zip(harness, reference)]
            ratios[(model, method)] = statistics.median(pairs)
            print(f"{model:>14} {method:>5}  harness tokens/s {spread([h[0] for h in harness])}  |  hand loop "
                  f"{spread([r[0] for r in reference])}  |  ratio {ratios[(model, method)]:.3f} (pairs: "
                  f"{', '.join(f'{r:.3f}' for r in pairs)})  |  CPU-time ratio {statistics.median(cpu_pairs):.3f} "
                  f"(pairs: {', '.join(f'{r:.3f}' for r in cpu_pairs)})  |  page faults per token: harness "
                  f"{statistics.median([h[2] for h in harness]):.0f}, hand loop "
                  f"{statistics.median([r[2] for r in reference]):.0f}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"loop overhead: harness / hand-written tokens/s, median of {args.repeats} pairs, worst case "
          f"{min(ratios.values()):.3f} (target >= 0.97)")


if __name__ == "__main__":
    main()
