"""Component subsets: only the attention linear layers, only the feed-forward ones, or parameters matching a regex."""

import re
from dataclasses import dataclass

from bench import ConfigError
from bench.methods import check, register
from bench.methods._common import freeze_all_but, in_modules


@dataclass
class ComponentsConfig:
    part: str = "attention"  # attention | mlp | pattern
    pattern: str = ""  # part=pattern: regex searched in parameter names, e.g. 'layer\.5\.|LayerNorm'

    def __post_init__(self):
        check(self.part in ("attention", "mlp", "pattern"), "part", self.part, "must be attention, mlp or pattern")
        check(self.part != "pattern" or bool(self.pattern), "pattern", self.pattern, "is required with part=pattern")
        try:
            re.compile(self.pattern)
        except re.error as error:
            raise ConfigError(f"`method.params.pattern` ({self.pattern!r}) is not a valid regex: {error}") from None


@register("components", family="selective", config=ComponentsConfig,
          summary="only the attention (or feed-forward, or regex-matched) weights train")
def apply(model, cfg: ComponentsConfig, arch):
    in_head = in_modules(arch.head)
    if cfg.part == "pattern":
        matches = re.compile(cfg.pattern).search
        if not any(matches(name) and not in_head(name) for name, _ in model.named_parameters()):
            raise ConfigError(f"`method.params.pattern` ({cfg.pattern!r}) matches no parameter of "
                              f"{type(model).__name__}")
    else:
        matches = in_modules(arch.attention if cfg.part == "attention" else arch.mlp)
    return freeze_all_but(model, lambda name: matches(name) or in_head(name))
