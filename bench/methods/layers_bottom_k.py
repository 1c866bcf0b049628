"""Bottom-k layers: only the first k transformer blocks train, plus the head (the contrast to top-k)."""

from bench.methods import register
from bench.methods._common import train_blocks
from bench.methods.layers_top_k import LayersConfig


@register("layers-bottom-k", family="selective", config=LayersConfig,
          summary="only the first k transformer blocks (and the task head) train")
def apply(model, cfg: LayersConfig, arch):
    return train_blocks(model, arch, cfg.blocks(arch, top=False))
