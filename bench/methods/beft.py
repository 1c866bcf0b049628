"""BEFT through peft: only a bias vector on the value projections trains, BitFit narrowed to the one bias
peft's mapping names per architecture (`value`, `v_proj`). Selective, as BitFit is: it tunes existing terms of the
model; on layers without a bias (Llama) it adds one at zero, which peft then cannot merge, hence `merges` false."""

from dataclasses import dataclass
from typing import Any

from bench.methods import register
from bench.methods._common import apply_peft_type


@dataclass
class BeftConfig:
    target_modules: Any = r".*\.(value|v_proj)"  # qv | attention | mlp | all-linear | list of layer names or regexes


apply = apply_peft_type("BEFT")
register("beft", family="selective", config=BeftConfig, merges=False,
         summary="a trainable bias on each value projection (added where the layer has none)")(apply)
