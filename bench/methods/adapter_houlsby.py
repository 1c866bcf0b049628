"""Houlsby adapter: serial bottleneck adapters after the attention output and after the feed-forward output."""

from dataclasses import dataclass

from bench.methods import check, check_counts, register


@dataclass
class HoulsbyConfig:
    bottleneck: int = 64  # hidden width of each adapter
    activation: str = "relu"  # relu | gelu | silu

    def __post_init__(self):
        check_counts(self, "bottleneck")
        check(self.activation in ("relu", "gelu", "silu"), "activation", self.activation, "must be relu, gelu or silu")


@register("adapter-houlsby", family="adapter", config=HoulsbyConfig,
          summary="serial bottleneck adapters after attention and feed-forward outputs")
def apply(model, cfg: HoulsbyConfig, arch):
    from bench.methods._bottleneck import Serial, insert, train_adapters_and_head  # torch: only when applied

    insert(model, arch.attention_out + arch.mlp_out, Serial, cfg.bottleneck, cfg.activation)
    return train_adapters_and_head(model, arch)
