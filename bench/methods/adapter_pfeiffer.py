"""Pfeiffer adapter (Pfeiffer et al., 2021): one serial bottleneck adapter per block, after the feed-forward output.

Placed where Houlsby's second adapter sits (after the feed-forward's output projection, before the residual add);
Pfeiffer et al. found the attention-side adapter adds little, so this is Houlsby without it, half the parameters.
"""

from bench.methods import register
from bench.methods.adapter_houlsby import HoulsbyConfig


@register("adapter-pfeiffer", family="adapter", config=HoulsbyConfig,
          summary="one serial bottleneck adapter per block, after the feed-forward output")
def apply(model, cfg: HoulsbyConfig, arch):
    from bench.methods._bottleneck import Serial, insert, train_adapters_and_head  # torch: only when applied

    insert(model, arch.mlp_out, Serial, cfg.bottleneck, cfg.activation)
    return train_adapters_and_head(model, arch)
