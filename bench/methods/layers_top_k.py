"""Top-k layers (Lee et al., 2019, "What would Elsa do?"): only the last k transformer blocks train, plus the head."""

from dataclasses import dataclass

from bench import ConfigError
from bench.methods import check_counts, register
from bench.methods._common import train_blocks


@dataclass
class LayersConfig:
    k: int = 2  # how many transformer blocks train

    def __post_init__(self):
        check_counts(self, "k")

    def blocks(self, arch, top: bool) -> list[str]:
        if self.k > len(arch.blocks):
            raise ConfigError(f"`method.params.k` ({self.k}) exceeds the model's {len(arch.blocks)} transformer blocks")
        return arch.blocks[-self.k:] if top else arch.blocks[: self.k]


@register("layers-top-k", family="selective", config=LayersConfig,
          summary="only the last k transformer blocks (and the task head) train")
def apply(model, cfg: LayersConfig, arch):
    return train_blocks(model, arch, cfg.blocks(arch, top=True))
