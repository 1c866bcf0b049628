"""Multi-adapter serving: one resident base model and K task adapters, against K full fine-tuned copies.

    peft-bench-serve model=minilm-l6 method=lora          # K = 1, 2, 4, 8, 16, 32: one record per K

One serving trial measures, for one base model, one method and one K:
  adapters     K adapters: a sweep's saved checkpoints, or K freshly initialised ones (cost only)
  load         seconds to load one adapter onto the resident base, bytes on disk, memory each resident one adds
  swap         switching the active adapter: set_adapter, peft's hot-swap, merge-serve-unmerge
  traffic      request streams (uniform, Zipf, round-robin) served as mixed batches, single-adapter batches,
               merged weights, and by the base alone: throughput and p50/p90 latency per request
  full_copies  K full model copies: memory and load time measured while they fit, extrapolated (labelled) beyond
  storage      bytes on disk for K tasks, both ways
Every figure is measured; what is extrapolated says so in a `*_source` column beside it.
"""
