"""Peak training memory at the sizes users train (1B, 7B, 70B decoders), predicted from the measured trials.

A prediction, not a measurement: each method's measured breakdown is fitted as
    peak = weights + gradients + optimizer state + activations + other
with weights per parameter, gradients and optimizer state per trainable parameter (medians of the measured ratios),
activations as bytes per token x layer x hidden unit plus bytes per token x vocabulary entry for a language-model
loss (non-negative least squares over the measured trials), and `other` (the process's runtime, libraries and
data; on a GPU the CUDA context instead) as the median measured. The error shown is the prediction's against each
measured trial's peak: in-sample, and with every trial of that model left out of the fit.

Scaled to the target setting: weights, gradients of bf16 weights and activations by element size (bf16: 2 bytes
against the measured precision's), optimizer state as measured (AdamW's two moments in fp32), adapter weights and
gradients as measured (fp32). QLoRA is LoRA with its base weights in 4-bit NF4 with double quantization, 4.127 bits
per parameter (Dettmers et al., 2023, section 3), embeddings and norms left in bf16. No gradient checkpointing.

    python -m bench.report.memory_fit results/tradeoffs      (the fit, its errors and the predictions, as text)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report.load import load_trials, read_table
from bench.report.page import Block
from bench.report.render import Cell, Table
from bench.results.metrics import NA, human_bytes

GIB = 1024**3
ELEMENT_BYTES = {"fp32": 4, "float32": 4, "bf16": 2, "bfloat16": 2, "fp16": 2, "float16": 2}
NF4_BITS_PER_PARAM = 4.127  # NF4 + double-quantized constants (QLoRA paper, section 3)
TARGET_ELEMENT_BYTES = 2  # bf16
BATCH, LENGTH = 4, 512  # the stated setting of every prediction: 4 sequences of 512 tokens per step, LM loss
LORA_RANK = 8  # conf/schema/params/lora's r; LoRA on q_proj and v_proj (peft's default for Llama)
BREAKDOWN = ("mem_weights_bytes", "mem_grads_bytes", "mem_optimizer_bytes", "mem_activations_bytes", "mem_other_bytes")


@dataclass(frozen=True)
class Arch:
    layers: int
    hidden: int
    q_dim: int
    kv_dim: int
    vocab: int
    params: float
    tied: bool  # input and output embeddings shared (one vocab x hidden matrix)


# Measured models (their config.json) and prediction targets (their published configs).
ARCHS = {
    "minilm-l6": Arch(6, 384, 384, 384, 30522, 22.7e6, True),
    "smollm2-135m": Arch(30, 576, 576, 192, 49152, 134.5e6, True),
    "gemma3-270m": Arch(18, 640, 1024, 256, 262144, 268.1e6, True),
    "Llama-3.2-1B": Arch(16, 2048, 2048, 512, 128256, 1.236e9, True),
    "Llama-2-7B": Arch(32, 4096, 4096, 4096, 32000, 6.738e9, False),
    "Llama-2-70B": Arch(80, 8192, 8192, 1024, 32000, 68.98e9, False),
    "LLaMA-65B": Arch(80, 8192, 8192, 8192, 32000, 65.2e9, False),
    "GPT-3-175B": Arch(96, 12288, 12288, 12288, 50257, 175e9, False),
}
TARGETS = ("Llama-3.2-1B", "Llama-2-7B", "Llama-2-70B")
PREDICTED = ("full", "lora", "qlora")


@dataclass(frozen=True)
class Published:
    source: str
    setting: str
    model: str
    method: str
    bytes: float
    bound: str  # ">" or "<" where the paper gives a bound, "" for a figure


# Figures the papers state; their batch size and length are not given beside them, so the prediction beside each is
# at this module's BATCH x LENGTH and may differ from the paper's setting.
PUBLISHED = (
    Published("QLoRA (Dettmers et al., 2023), abstract", "LLaMA 65B, 16-bit full fine-tuning", "LLaMA-65B", "full",
              780e9, ">"),
    Published("QLoRA (Dettmers et al., 2023), abstract", "LLaMA 65B, QLoRA on one 48 GB GPU", "LLaMA-65B", "qlora",
              48e9, "<"),
    Published("LoRA (Hu et al., 2021), section 4.2", "GPT-3 175B, Adam, full fine-tuning", "GPT-3-175B", "full",
              1.2e12, ""),
    Published("LoRA (Hu et al., 2021), section 4.2", "GPT-3 175B, LoRA r=4 on Wq, Wv", "GPT-3-175B", "lora",
              350e9, ""),
)


@dataclass
class Fit:
    method: str
    weights_per_param: float  # bytes, measured precision
    grads_per_trainable: float
    optimizer_per_trainable: float
    act_per_token_layer_hidden: float  # bytes, measured precision
    act_per_token_vocab: float
    other_bytes: float
    element_bytes: int  # the measured precision's
    points: pd.DataFrame  # model, task, measured and predicted peak, errors


def usable(trials: pd.DataFrame) -> pd.DataFrame:
    """ok trials of a known architecture with the whole breakdown and a token count."""
    need = ["method", "model", "status", "precision", "total_params", "trainable_params", "peak_mem_bytes",
            "train_padded_tokens", "train_steps", *BREAKDOWN]
    if trials.empty or any(c not in trials for c in need):
        return pd.DataFrame()
    rows = trials[(trials["status"] == "ok") & trials["model"].isin(ARCHS) & trials["precision"].isin(ELEMENT_BYTES)]
    rows = rows.dropna(subset=need[4:])
    rows = rows[rows["train_steps"] > 0].copy()
    if rows.empty:
        return rows
    rows["tokens"] = rows["train_padded_tokens"] / rows["train_steps"]
    rows["layer_hidden"] = [ARCHS[m].layers * ARCHS[m].hidden for m in rows["model"]]
    is_lm = rows.get("quality_metric", pd.Series("", index=rows.index)).fillna("").str.startswith("rouge")
    rows["lm_vocab"] = [ARCHS[m].vocab if lm else 0 for m, lm in zip(rows["model"], is_lm)]
    return rows


def _coefficients(rows: pd.DataFrame) -> tuple[float, ...]:
    from scipy.optimize import nnls

    weights = float((rows["mem_weights_bytes"] / rows["total_params"]).median())
    trainable = rows["trainable_params"].clip(lower=1)
    grads = float((rows["mem_grads_bytes"] / trainable).median())
    optimizer = float((rows["mem_optimizer_bytes"] / trainable).median())
    design = np.column_stack([rows["tokens"] * rows["layer_hidden"], rows["tokens"] * rows["lm_vocab"]])
    if not design[:, 1].any():
        design = design[:, :1]
    solution, _ = nnls(design.astype(float), rows["mem_activations_bytes"].to_numpy(float))
    per_vocab = float(solution[1]) if len(solution) > 1 else 0.0
    return weights, grads, optimizer, float(solution[0]), per_vocab, float(rows["mem_other_bytes"].median())


def _predict_measured(coef: tuple[float, ...], rows: pd.DataFrame) -> pd.Series:
    weights, grads, optimizer, per_lh, per_vocab, other = coef
    return (weights * rows["total_params"] + (grads + optimizer) * rows["trainable_params"]
            + per_lh * rows["tokens"] * rows["layer_hidden"] + per_vocab * rows["tokens"] * rows["lm_vocab"] + other)


def fit(trials: pd.DataFrame) -> dict[str, Fit]:
    """One fit per method measured on at least one known model; its error on each of its trials."""
    rows = usable(trials)
    fits = {}
    for method, group in rows.groupby("method") if not rows.empty else ():
        coef = _coefficients(group)
        points = group[["model", "task", "peak_mem_bytes"]].copy()
        points["predicted_bytes"] = _predict_measured(coef, group)
        points["held_out_bytes"] = np.nan
        for model in group["model"].unique():
            rest = group[group["model"] != model]
            if rest["model"].nunique():  # another model to learn from
                mine = group["model"] == model
                points.loc[mine, "held_out_bytes"] = _predict_measured(_coefficients(rest), group[mine])
        points["error"] = points["predicted_bytes"] / points["peak_mem_bytes"] - 1
        points["held_out_error"] = points["held_out_bytes"] / points["peak_mem_bytes"] - 1
        element = ELEMENT_BYTES[str(group["precision"].mode().iloc[0])]
        fits[str(method)] = Fit(str(method), *coef, element, points)
    return fits


def lora_params(arch: Arch, rank: int = LORA_RANK) -> float:
    """LoRA's trainable parameters on q_proj and v_proj: rank x (in + out) per matrix per layer."""
    return arch.layers * rank * ((arch.hidden + arch.q_dim) + (arch.hidden + arch.kv_dim))


def predict(fits: dict[str, Fit], model: str, method: str, batch: int = BATCH, length: int = LENGTH) -> dict | None:
    """Peak training bytes by part for `method` on `model` at bf16, AdamW, batch x length tokens with an LM loss;
    None where the method it builds on (full, or lora for LoRA and QLoRA) was not measured."""
    source = fits.get("full" if method == "full" else "lora")
    if source is None:
        return None
    arch, tokens = ARCHS[model], batch * length
    scale = TARGET_ELEMENT_BYTES / source.element_bytes
    activations = (source.act_per_token_layer_hidden * arch.layers * arch.hidden
                   + source.act_per_token_vocab * arch.vocab) * tokens * scale
    if method == "full":
        trainable = arch.params
        weights = source.weights_per_param * scale * arch.params
        grads = source.grads_per_trainable * scale * trainable
    else:
        trainable = lora_params(arch)
        embeddings = arch.vocab * arch.hidden * (1 if arch.tied else 2)
        base = source.weights_per_param * scale * arch.params
        if method == "qlora":
            base = (arch.params - embeddings) * NF4_BITS_PER_PARAM / 8 + embeddings * TARGET_ELEMENT_BYTES
        weights = base + source.weights_per_param * trainable  # adapters stay in the measured (fp32) precision
        grads = source.grads_per_trainable * trainable
    parts = {"weights": weights, "gradients": grads, "optimizer": source.optimizer_per_trainable * trainable,
             "activations": activations}
    return {**parts, "total": sum(parts.values()), "trainable_params": trainable}


def prediction_frame(fits: dict[str, Fit], models=TARGETS) -> pd.DataFrame:
    rows = []
    for model in models:
        for method in PREDICTED:
            parts = predict(fits, model, method)
            if parts is not None:
                rows.append({"model": model, "method": method, **parts})
    return pd.DataFrame(rows)


def error_frame(fits: dict[str, Fit]) -> pd.DataFrame:
    """Per method and measured model: trials, mean measured peak, mean and worst |error| in-sample and held out."""
    rows = []
    for method, f in fits.items():
        for (model, task), p in f.points.groupby(["model", "task"]):
            rows.append({"method": method, "model": model, "task": task, "n_trials": len(p),
                         "measured_bytes": p["peak_mem_bytes"].mean(), "predicted_bytes": p["predicted_bytes"].mean(),
                         "error_mean": p["error"].mean(), "error_max_abs": p["error"].abs().max(),
                         "held_out_error_mean": p["held_out_error"].mean()})
    return pd.DataFrame(rows)


def published_frame(fits: dict[str, Fit]) -> pd.DataFrame:
    rows = []
    for pub in PUBLISHED:
        parts = predict(fits, pub.model, pub.method)
        rows.append({"source": pub.source, "setting": pub.setting, "published_bytes": pub.bytes,
                     "published_bound": pub.bound, "predicted_bytes": parts["total"] if parts else np.nan})
    return pd.DataFrame(rows)


def _percent(value: float) -> str:
    if pd.isna(value):
        return NA
    rounded = round(value * 100)
    return f"{rounded:+d}%" if rounded else "0%"  # never "-0%"


def _gib(value: float) -> str:
    return NA if pd.isna(value) else f"{value / GIB:,.1f}"


def add_section(trials: pd.DataFrame, blocks: list, add_table) -> None:
    """The report's section: what was fitted, its error on the measured trials, the predictions, published figures."""
    fits = fit(trials)
    if "full" not in fits and "lora" not in fits:
        return
    blocks += [Block("heading", "Memory at larger sizes (predicted)", anchor="memory-prediction"),
               Block("text", SECTION_TEXT)]
    errors = error_frame(fits)
    add_table(Table("memory_fit_error", "Memory fit: predicted against measured peak (per method and model)",
                    ["method", "model", "task", "trials", "measured peak", "predicted peak", "error",
                     "worst |error|", "error, model held out"],
                    [[Cell(r.method), Cell(r.model), Cell(r.task), Cell(str(r.n_trials)),
                      Cell(human_bytes(r.measured_bytes)), Cell(human_bytes(r.predicted_bytes)),
                      Cell(_percent(r.error_mean)), Cell(f"{r.error_max_abs * 100:.0f}%"),
                      Cell(_percent(r.held_out_error_mean))] for r in errors.itertuples()], errors, text_columns=3))
    predictions = prediction_frame(fits)
    add_table(Table("memory_prediction", f"Predicted peak training memory, GiB (bf16 weights, AdamW, batch {BATCH} x "
                    f"{LENGTH} tokens, LM loss, no gradient checkpointing): a prediction, not a measurement",
                    ["model", "method", "trainable", "weights", "gradients", "optimizer", "activations", "total"],
                    [[Cell(r.model), Cell(r.method), Cell(f"{r.trainable_params / 1e6:,.1f}M"), Cell(_gib(r.weights)),
                      Cell(_gib(r.gradients)), Cell(_gib(r.optimizer)), Cell(_gib(r.activations)),
                      Cell(_gib(r.total))] for r in predictions.itertuples()], predictions, group_columns=1,
                    text_columns=2))
    published = published_frame(fits)
    add_table(Table("memory_published", "Published figures beside this fit's prediction (GB = 10^9 bytes)",
                    ["source", "setting", "published GB", f"predicted GB (batch {BATCH} x {LENGTH})"],
                    [[Cell(r.source), Cell(r.setting), Cell(f"{r.published_bound}{r.published_bytes / 1e9:,.0f}"),
                      Cell(NA if pd.isna(r.predicted_bytes) else f"{r.predicted_bytes / 1e9:,.0f}")]
                     for r in published.itertuples()], published, text_columns=2))


SECTION_TEXT = (
    "A prediction, not a measurement: each method's measured memory breakdown (weights, gradients and optimizer "
    "state per parameter; activations per token, layer and hidden unit, and per token and vocabulary entry for a "
    "language-model loss) is fitted on the trials above and scaled to bf16 weights with AdamW's moments in fp32. "
    "QLoRA is LoRA's fit with 4-bit NF4 base weights (4.127 bits per parameter); no QLoRA trial ran here. "
    "`error` is the fit against each measured peak; `error, model held out` predicts a model from the other models' "
    "trials only, the closer guide to how far the prediction can be trusted at sizes nobody measured here. "
    "Measured peaks on a CPU are process RSS and include the runtime (`other`); the GPU predictions leave that out "
    "(the CUDA context adds about 0.3-1 GiB). The papers' batch sizes and lengths are not given beside their "
    "figures, so those rows compare orders of magnitude, not settings.")


def main(argv: list[str] | None = None) -> None:
    source = Path((argv if argv is not None else sys.argv[1:])[0])
    trials = load_trials(source, read_table(source))
    fits = fit(trials)
    pd.set_option("display.width", 200)
    print(error_frame(fits).to_string(index=False))
    frame = prediction_frame(fits)
    gib = frame.select_dtypes("number").columns.drop("trainable_params")
    print(frame.assign(**{c: frame[c] / GIB for c in gib}).round(1).to_string(index=False))
    print(published_frame(fits).to_string(index=False))


if __name__ == "__main__":
    main()
