"""ShadowPEFT through peft: a small trainable "shadow" decoder runs beside the frozen base; at every block the gap
between the base's hidden state and the shadow's is injected back through a low-rank bottleneck (zero at start).

An adapter: an extra network in the forward pass, which cannot merge into the base weights. peft builds it for
decoder-only models (it rides the decoder's layer loop); encoders are refused (skipped).
"""

from dataclasses import dataclass

from bench import Unsupported
from bench.methods import check, check_counts, register
from bench.methods._common import peft_wrap


@dataclass
class ShadowConfig:
    r: int = 8  # rank of the injection bottleneck
    shadow_alpha: float = 0.1  # strength of the injected correction
    shadow_dropout: float = 0.2  # dropout on the discrepancy before the bottleneck (peft's default)
    shadow_num_hidden_layers: int = 1  # depth of the mirrored shadow decoder

    def __post_init__(self):
        check_counts(self, "r", "shadow_num_hidden_layers")
        check(0 <= self.shadow_dropout < 1, "shadow_dropout", self.shadow_dropout, "must be in [0, 1)")


@register("shadow", family="adapter", config=ShadowConfig, peft_type="SHADOW",
          summary="a small trainable shadow decoder beside the frozen one, injecting corrections at every block")
def apply(model, cfg: ShadowConfig, arch):
    import peft

    if arch.kind != "decoder":
        raise Unsupported(f"`method` ('shadow') rides a decoder's layer loop; {type(model).__name__} is an {arch.kind}")
    config = peft.ShadowConfig(r=cfg.r, shadow_alpha=cfg.shadow_alpha, shadow_dropout=cfg.shadow_dropout,
                               shadow_num_hidden_layers=cfg.shadow_num_hidden_layers)
    return peft_wrap(model, config, arch)
