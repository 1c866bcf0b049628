"""Model catalogue: embedded packages, tiny random models, and any Hub id or local folder.

All loaders end in one place, `from_pretrained` on a folder or Hub id, so every model goes through the same path.
"""

from __future__ import annotations

from pathlib import Path

from bench.config import ConfigError, ModelConfig, Unsupported
from bench.models.embedded import converted_gguf, package_dir
from bench.models.tiny import tiny_model_dir

ENCODER_TYPES = {
    "bert", "roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2", "xlm-roberta", "mpnet",
    "modernbert", "camembert", "ernie", "nomic_bert",
}


def source(cfg: ModelConfig, cache_dir: Path) -> str:
    """What from_pretrained takes for this model: a local folder or a Hub id."""
    if cfg.loader == "package":
        return str(package_dir(cfg.package, f"model `{cfg.name}`") / cfg.package_subdir)
    if cfg.loader == "gguf-package":
        return str(converted_gguf(cfg.package, cfg.gguf_file, cache_dir, cfg.name))
    if cfg.loader == "tiny":
        if cfg.arch not in ("bert", "llama"):
            raise ConfigError(f"`model.arch` ({cfg.arch!r}) must be bert or llama for a tiny model")
        return str(tiny_model_dir(cfg.arch, cache_dir))
    return cfg.name_or_path


def load_config(cfg: ModelConfig, cache_dir: Path):
    from transformers import AutoConfig

    where = source(cfg, cache_dir)
    try:
        return AutoConfig.from_pretrained(where, trust_remote_code=cfg.trust_remote_code, revision=cfg.revision)
    except OSError as error:
        raise ConfigError(f"`model.name_or_path` ({where!r}) is neither a local model folder nor a reachable Hub id: "
                          f"{str(error).splitlines()[0]}") from error


def kind(config) -> str:
    """encoder | decoder | seq2seq, from the model's config rather than its name."""
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith("ForCausalLM") for a in architectures):
        return "decoder"
    if config.model_type in ENCODER_TYPES or any(a.endswith("ForMaskedLM") for a in architectures):
        return "encoder"
    return "decoder"


def check_task_fits(model_kind: str, task_kind: str, cfg: ModelConfig, task_name: str) -> None:
    if task_kind == "generation" and model_kind == "encoder":
        raise Unsupported(
            f"`task` ({task_name!r}) is a generation task and `model` ({cfg.name!r}) is encoder-only; "
            "use a decoder or seq2seq model"
        )


def load(cfg: ModelConfig, task_kind: str, num_labels: int | None, cache_dir: Path, dtype=None):
    """(model, tokenizer) with the head the task needs: a classifier, or the model's own LM head."""
    from transformers import (
        AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer,
    )

    where = source(cfg, cache_dir)
    config = load_config(cfg, cache_dir)
    model_kind = kind(config)
    check_task_fits(model_kind, task_kind, cfg, "")
    common = dict(trust_remote_code=cfg.trust_remote_code, revision=cfg.revision)
    tokenizer = AutoTokenizer.from_pretrained(where, **common)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if task_kind == "classification":
        model = AutoModelForSequenceClassification.from_pretrained(
            where, num_labels=num_labels, pad_token_id=tokenizer.pad_token_id, dtype=dtype, **common
        )
    elif model_kind == "seq2seq":
        model = AutoModelForSeq2SeqLM.from_pretrained(where, dtype=dtype, **common)
    else:
        model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **common)
    return model, tokenizer
