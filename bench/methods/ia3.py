"""IA3 (Liu et al., 2022, T-Few) through peft: learned vectors that rescale keys, values and the feed-forward
activations; initialised to ones, so the untrained model is unchanged."""

import re
from dataclasses import dataclass

from bench.methods import register
from bench.methods._common import peft_wrap

# Key and value projections across architectures (Bert, Llama/Mistral/Qwen, DistilBert, T5); GPT-2's fused c_attn.
KEY_VALUE = re.compile(r"(key|value|k_proj|v_proj|k_lin|v_lin|\.k|\.v|c_attn|query_key_value)$")


@dataclass
class Ia3Config:
    feedforward: bool = True  # also rescale the input of each block's feed-forward output projection


@register("ia3", family="adapter", config=Ia3Config, peft_type="IA3", merges=True,
          summary="learned vectors rescale keys, values and feed-forward activations")
def apply(model, cfg: Ia3Config, arch):
    import peft

    attention = [n for n in arch.attention if KEY_VALUE.search(n)] or arch.query_value
    feedforward = arch.mlp_out if cfg.feedforward else []
    peft_config = peft.IA3Config(target_modules=attention + feedforward, feedforward_modules=feedforward)
    return peft_wrap(model, peft_config, arch)
