"""P-tuning (Liu et al., 2021, "GPT understands, too") through peft: virtual tokens produced by a small trainable
prompt encoder (MLP or LSTM) and prepended to the input embeddings."""

from dataclasses import dataclass
from typing import ClassVar

from bench.methods import register
from bench.methods._common import SoftPromptConfig, peft_wrap


@dataclass
class PTuningConfig(SoftPromptConfig):
    CHOICES: ClassVar[dict[str, tuple]] = {"encoder": ("MLP", "LSTM")}  # the prompt encoder's reparameterisation
    encoder: str = "MLP"
    encoder_hidden: int = 128  # hidden width of the prompt encoder


@register("p-tuning", family="soft-prompt", config=PTuningConfig,
          peft_type="P_TUNING",
          summary="virtual tokens from a small trainable prompt encoder, prepended to the input")
def apply(model, cfg: PTuningConfig, arch):
    import peft

    peft_config = peft.PromptEncoderConfig(num_virtual_tokens=cfg.num_virtual_tokens,
                                           encoder_hidden_size=cfg.encoder_hidden,
                                           encoder_reparameterization_type=cfg.encoder)
    return peft_wrap(model, peft_config, arch)
