"""The harness's training loop against a minimal hand-written PyTorch loop: same model, method, batches,
sequence length, optimizer (AdamW), schedule (linear), clipping and threads. Prints the tokens/s ratio
(target >= 0.97) from medians of interleaved repetitions.

python benchmarks/loop_overhead.py                                    # full + lora on minilm-l6 and smollm2-135m
python benchmarks/loop_overhead.py --models minilm-l6 --repeats 5
python benchmarks/loop_overhead.py --device cuda                      # on a GPU (bf16 autocast, fp32 weights)
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from _common import build, configure, median, spread

from bench import tasks
from bench.trial import autocast, precision, training_args


def harness_tokens_per_s(cfg, ready) -> float:
    """The harness's own loop: transformers' Trainer with the throughput listener, as a trial runs it."""
    from transformers import Trainer

    from bench.trackers.throughput import CountingCollator, ThroughputCallback

    counter = CountingCollator(tasks.collator(cfg.task.kind, ready.tokenizer))
    speed = ThroughputCallback(counter, cfg.train.warmup_steps, ready.device, measure_flops=False)
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = Trainer(model=ready.model, args=training_args(cfg, ready.device, output_dir, progress=False),
                          train_dataset=ready.data.train, data_collator=counter, callbacks=[speed])
        trainer.train()
    return speed.result()["train_tokens_per_s"]


def reference_tokens_per_s(cfg, ready) -> float:
    """A minimal loop written by hand: the lower bound of what any harness can cost."""
    model, device, train = ready.model, ready.device, cfg.train
    loader = torch.utils.data.DataLoader(ready.data.train, batch_size=train.batch_size, shuffle=True,
                                         collate_fn=tasks.collator(cfg.task.kind, ready.tokenizer),
                                         generator=torch.Generator().manual_seed(cfg.seed))
    trainable = [p for p in model.parameters() if p.requires_grad]
    # fused AdamW, as the Trainer's default (adamw_torch_fused): the for-loop AdamW would make this reference
    # slower than the harness on full fine-tuning, and the ratio flattering
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=train.weight_decay, fused=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / train.max_steps)
    # The trial's precision: float32 weights, bf16/fp16 autocast (fp16 with a gradient scaler, as the Trainer does)
    scaler = torch.amp.GradScaler(device.type, enabled=precision(cfg, device) == "fp16")
    model.train()
    seconds, tokens = 0.0, 0
    batches = iter(loader)
    for step in range(train.max_steps):
        batch = {k: v.to(device) for k, v in next(batches).items()}
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        with autocast(cfg, device):
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
        if step >= train.warmup_steps:
            seconds += time.perf_counter() - started
            tokens += int(batch["attention_mask"].sum())
    return tokens / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["minilm-l6", "smollm2-135m"])
    parser.add_argument("--methods", nargs="+", default=["full", "lora"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    ratios = {}
    for model in args.models:
        for method in args.methods:
            cfg = configure(model, method, args.steps, args.warmup, args.device)
            ready = build(cfg)
            harness, reference = [], []
            for repeat in range(args.repeats):  # interleaved, alternating order: drift hits both sides alike
                runs = [(harness, harness_tokens_per_s), (reference, reference_tokens_per_s)]
                for results, run in runs if repeat % 2 == 0 else runs[::-1]:
                    results.append(run(cfg, ready))
            ratios[(model, method)] = median(harness) / median(reference)
            print(f"{model:>14} {method:>5}  harness tokens/s {spread(harness)}  |  hand loop {spread(reference)}  "
                  f"|  ratio {ratios[(model, method)]:.3f}", flush=True)
    print(f"loop overhead: harness / hand-written tokens/s, worst case {min(ratios.values()):.3f} (target >= 0.97)")


if __name__ == "__main__":
    main()
