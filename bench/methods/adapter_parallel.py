"""Parallel adapter (He et al., 2022, "Towards a unified view of PEFT"): a bottleneck adapter beside each
feed-forward block, h = FFN(x) + s·adapter(x), reading the block's input x rather than its output.

The feed-forward block is found per architecture as the block's mlp linear layers (Arch.mlp): x is the input of
the first one (Bert's intermediate.dense, Llama's gate_proj/up_proj, GPT-2's c_fc), and the adapter's output
joins the last one's (Arch.mlp_out: output.dense, down_proj, c_proj) before the residual add. In Bert the
residual add and LayerNorm sit inside BertOutput after output.dense, so the adapter joins before them, as the
feed-forward output does; no module spans exactly the feed-forward in Bert, hence the pre-hook.
"""

from dataclasses import dataclass

from bench.methods import check, register
from bench.methods._common import linear_shape
from bench.methods.adapter_houlsby import HoulsbyConfig


@dataclass
class ParallelConfig(HoulsbyConfig):
    scale: float = 4.0  # s, the adapter output's scale (He et al. found 4 better than 1 for the FFN)

    def __post_init__(self):
        super().__post_init__()
        check(self.scale > 0, "scale", self.scale, "must be > 0")


@register("adapter-parallel", family="adapter", config=ParallelConfig,
          summary="bottleneck adapter beside each feed-forward block, reading its input")
def apply(model, cfg: ParallelConfig, arch):
    from bench.methods._bottleneck import BesideFeedForward, train_adapters_and_head  # torch: only when applied

    for out_name in arch.mlp_out:
        block = arch.blocks[arch.block_of(out_name)]
        first = next(n for n in arch.mlp if n.startswith(block + ".") and n != out_name)
        parent_name, _, child = out_name.rpartition(".")
        parent = model.get_submodule(parent_name)
        width = linear_shape(model, first)[0]
        adapter = BesideFeedForward(getattr(parent, child), width, cfg.bottleneck, cfg.activation, cfg.scale)
        setattr(parent, child, adapter)
        model.get_submodule(first).register_forward_pre_hook(adapter.capture)
    return train_adapters_and_head(model, arch)
