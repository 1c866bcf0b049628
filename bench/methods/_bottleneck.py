"""Bottleneck adapters (Houlsby et al., 2019; Pfeiffer et al., 2021; He et al., 2022), written here because the
`adapters` library pins transformers 4.x.

An adapter is down-projection -> nonlinearity -> up-projection with the up-projection zero-initialised, so an
untrained adapter is the identity and leaves the model's output unchanged.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from bench.methods._common import freeze_all_but, in_modules


class Bottleneck(nn.Module):
    def __init__(self, width: int, bottleneck: int, activation: str = "relu"):
        super().__init__()
        self.down = nn.Linear(width, bottleneck)
        self.act = {"relu": nn.ReLU(), "gelu": nn.GELU(), "silu": nn.SiLU()}[activation]
        self.up = nn.Linear(bottleneck, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(hidden)))


class Adapted(nn.Module):
    """A module with a bottleneck adapter beside it (`module`, `adapter`: the names a checkpoint stores)."""

    def __init__(self, module: nn.Module, width: int, bottleneck: int, activation: str):
        super().__init__()
        self.module = module
        self.adapter = Bottleneck(width, bottleneck, activation).to(next(module.parameters()).dtype)


class Serial(Adapted):
    """module(x) followed by an adapter with its own residual: h + adapter(h)."""

    def forward(self, *args, **kwargs):
        hidden = self.module(*args, **kwargs)
        return hidden + self.adapter(hidden)


class BesideFeedForward(Adapted):
    """Parallel adapter (He et al., 2022) beside a feed-forward block that has no module of its own (Bert).

    Wraps the block's output projection and adds s·adapter(x), where x is the feed-forward *input*, captured by a
    forward pre-hook on the block's first linear layer. The sum joins the output before the residual add (and,
    in Bert, before BertOutput's dropout + LayerNorm), which is where the feed-forward output itself joins.
    """

    def __init__(self, module: nn.Module, width: int, bottleneck: int, activation: str, scale: float = 1.0):
        super().__init__(module, width, bottleneck, activation)
        self.scale = scale
        self._input = None

    def capture(self, module, args):
        self._input = args[0]

    def forward(self, hidden, *args, **kwargs):
        ffn_input, self._input = self._input, None
        if ffn_input is None:
            raise RuntimeError("parallel adapter: the feed-forward input was not captured before its output layer ran")
        return self.module(hidden, *args, **kwargs) + self.scale * self.adapter(ffn_input)


def out_features(module: nn.Module) -> int:
    return module.out_features if hasattr(module, "out_features") else module.weight.shape[-1]


def insert(model: nn.Module, names: list[str], wrapper: type, bottleneck: int, activation: str, width=out_features):
    """Wrap each named module with an adapter; only adapters (and the head) train afterwards."""
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        module = getattr(parent, child)
        setattr(parent, child, wrapper(module, width(module), bottleneck, activation))
    return model


def train_adapters_and_head(model: nn.Module, arch) -> nn.Module:
    in_head = in_modules(arch.head)
    return freeze_all_but(model, lambda name: ".adapter." in name or in_head(name))
