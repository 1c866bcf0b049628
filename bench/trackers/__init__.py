"""Instrumentation that wraps or listens to training and evaluation; never inline in the loop.

params     - parameter counts (total, trainable, fraction)
memory     - peak memory of the training phase and its breakdown (context manager)
throughput - tokens/s, samples/s, FLOPs, loss (a TrainerCallback)
latency    - inference latency percentiles over fixed-size batches
storage    - bytes a method must store per task
"""
