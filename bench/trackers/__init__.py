"""Instrumentation that wraps or listens to training and evaluation; never inline in the loop.

protocol   - the one shape the trial knows for what listens to training: callbacks() in, figures() out; every
             `@register`ed Tracker of this folder runs in every trial without the trial naming it
grad_norm  - the gradient norm at the last logged step (a protocol tracker)

params     - parameter counts (total, trainable, fraction)
memory     - peak memory of the training phase and its breakdown into parts that sum to it (context manager)
throughput - tokens/s, samples/s, FLOPs per padded token, loss (a TrainerCallback)
latency    - inference latency percentiles over fixed-size batches
merge      - merging a method into the weights, checked with a precision-aware tolerance
storage    - bytes a method must store per task
energy     - joules per phase from NVML or RAPL counters (n/a where neither is readable)
peak_flops - the machine's peak FLOP/s, timed once when idle and kept (the mfu denominator)
nvml       - the NVML handle of the trial's own GPU (by UUID), its process's memory and energy
"""
