"""What a method needs to know about a model's layout, found by inspecting its modules, not by its name.

Works for Bert-like encoders (query/key/value, attention.output.dense, intermediate/output.dense),
Llama-like decoders (q/k/v/o_proj, gate/up/down_proj), GPT-2 (c_attn, c_proj, c_fc) and T5-like blocks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch.nn as nn

ATTENTION = re.compile(r"(attention|attn|SelfAttention|EncDecAttention)")
QUERY_VALUE = re.compile(r"(query|value|q_proj|v_proj|q_lin|v_lin|\.q|\.v)$")
# Projection that leaves the attention block (its output joins the residual stream).
ATTENTION_OUT = re.compile(r"(attention\.output\.dense|o_proj|out_proj|out_lin|attn\.c_proj|\.o)$")
# Projection that leaves the feed-forward block.
MLP_OUT = re.compile(r"(^|\.)(output\.dense|down_proj|fc2|mlp\.c_proj|wo|w2|dense_4h_to_h|lin2)$")
HEAD_NAMES = ("classifier", "score", "classification_head")


@dataclass
class Arch:
    kind: str  # encoder | decoder | seq2seq
    task_kind: str  # classification | generation
    blocks: list[str]  # names of the transformer blocks, input to output
    attention: list[str] = field(default_factory=list)  # full names of linear layers inside attention
    mlp: list[str] = field(default_factory=list)  # full names of the other linear layers inside blocks
    head: list[str] = field(default_factory=list)  # task head modules, trained by every method
    tokenizer: object = None

    @property
    def query_value(self) -> list[str]:
        """The LoRA paper's default targets; all attention layers where q/v are fused (GPT-2's c_attn)."""
        return [n for n in self.attention if QUERY_VALUE.search(n)] or self.attention

    @property
    def attention_out(self) -> list[str]:
        return [n for n in self.attention if ATTENTION_OUT.search(n)]

    @property
    def mlp_out(self) -> list[str]:
        return [n for n in self.mlp if MLP_OUT.search(n)]

    def block_of(self, name: str) -> int | None:
        for index, block in enumerate(self.blocks):
            if name.startswith(block + "."):
                return index
        return None


def _linear_types():
    from transformers.pytorch_utils import Conv1D  # GPT-2's linear layer with transposed weights

    return (nn.Linear, Conv1D)


def find_blocks(model: nn.Module) -> list[str]:
    """Names of the transformer blocks: the children of the longest ModuleList of same-class modules."""
    best_name, best_len = None, 0
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > best_len and len({type(m) for m in module}) == 1:
            best_name, best_len = name, len(module)
    if best_name is None:
        raise ValueError(f"no transformer blocks found in {type(model).__name__}")
    return [f"{best_name}.{i}" for i in range(best_len)]


def inspect(model: nn.Module, kind: str, task_kind: str, tokenizer=None) -> Arch:
    arch = Arch(kind=kind, task_kind=task_kind, blocks=find_blocks(model), tokenizer=tokenizer)
    linear_types = _linear_types()
    for name, module in model.named_modules():
        block = arch.block_of(name)
        if block is None or not isinstance(module, linear_types):
            continue
        local = name[len(arch.blocks[block]) + 1:]
        (arch.attention if ATTENTION.search(local) else arch.mlp).append(name)
    if task_kind == "classification":
        arch.head = [n for n, _ in model.named_children() if n in HEAD_NAMES]
    return arch
