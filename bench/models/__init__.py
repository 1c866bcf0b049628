"""Model catalogue: embedded packages, tiny random models, and any Hub id or local folder.

All loaders end in one place, `from_pretrained` on a folder or Hub id, so every model goes through the same path.
"""

from __future__ import annotations

from pathlib import Path

from bench.config import ConfigError, ModelConfig, Unsupported
from bench.models.embedded import cache_is_complete, converted_dir, converted_gguf, package_dir
from bench.models.tiny import ARCHS, tiny_dir, tiny_model_dir

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
        if cfg.arch not in ARCHS:
            raise ConfigError(f"`model.arch` ({cfg.arch!r}) must be one of {', '.join(ARCHS)} for a tiny model")
        return str(tiny_model_dir(cfg.arch, cache_dir))
    return cfg.name_or_path


def check_installed(cfg: ModelConfig) -> None:
    """ConfigError with the pip command where the model ships in a package that is not installed: read from the
    package index alone, so the trial refuses it before anything loads."""
    if cfg.loader in ("package", "gguf-package"):
        package_dir(cfg.package, f"model `{cfg.name}`")


def load_config(cfg: ModelConfig, cache_dir: Path):
    from transformers import AutoConfig

    where = source(cfg, cache_dir)
    try:
        return AutoConfig.from_pretrained(where, trust_remote_code=cfg.trust_remote_code, revision=cfg.revision)
    except OSError as error:
        raise ConfigError(f"`model.name_or_path` ({where!r}) is neither a local model folder nor a reachable Hub id: "
                          f"{str(error).splitlines()[0]}") from error


def known_kind(cfg: ModelConfig, cache_dir: Path) -> str | None:
    """The model's kind, read without converting or building anything; None where its folder is not built yet (or
    the model cannot be found: the trial will say why)."""
    built = {"gguf-package": lambda: converted_dir(cfg.package, cache_dir),
             "tiny": lambda: tiny_dir(cfg.arch, cache_dir)}.get(cfg.loader)
    if built is not None and not cache_is_complete(built()):
        return None
    try:
        return kind(load_config(cfg, cache_dir))
    except ConfigError:
        return None


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


def make_resident(model) -> None:
    """Copy every parameter and buffer into the process's own memory. from_pretrained maps safetensors files into
    memory and the kernel reads a weight page only when it is first touched, so until then the weights are not in
    the RSS: a baseline read before training would miss them and count them as activations once training reads
    them. Copies (not reads) also keep them from being evicted and re-read under memory pressure."""
    import torch

    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            if tensor.device.type == "cpu":
                tensor.data = tensor.data.clone()


def is_quantized(model) -> bool:
    """The frozen base weights are stored quantized (bitsandbytes 4/8-bit): a different base than the loaded one."""
    from peft import PeftModel

    base = model.get_base_model() if isinstance(model, PeftModel) else model
    return bool(getattr(base, "is_loaded_in_4bit", False) or getattr(base, "is_loaded_in_8bit", False))


def lm_head_weight(cfg: ModelConfig, cache_dir: Path):
    """The base model's LM-head weight, read from its checkpoint files: the output embedding of an untied decoder
    (Llama 3), the input embedding of a tied one (SmolLM2). For decoders loaded with a classification head, which
    has no LM head."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    where = source(cfg, cache_dir)
    config = AutoConfig.from_pretrained(where, trust_remote_code=cfg.trust_remote_code, revision=cfg.revision)
    with torch.device("meta"):  # the module layout only, no memory
        layout = AutoModelForCausalLM.from_config(config, trust_remote_code=cfg.trust_remote_code)
    tied = getattr(config.get_text_config(), "tie_word_embeddings", False)
    module = layout.get_input_embeddings() if tied else layout.get_output_embeddings()
    name = next(n for n, m in layout.named_modules() if m is module) + ".weight"
    candidates = [name, name.removeprefix(layout.base_model_prefix + ".")]  # saved with or without the prefix
    return _checkpoint_tensor(_checkpoint_files(where, cfg.revision), candidates)


def _checkpoint_files(where: str, revision: str | None) -> list[Path]:
    folder = Path(where)
    if not folder.is_dir():
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(where, revision=revision, allow_patterns=["*.safetensors"]))
    return sorted(folder.glob("*.safetensors"))


def _checkpoint_tensor(files: list[Path], names: list[str]):
    from safetensors import safe_open

    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for name in names:
                if name in handle.keys():
                    return handle.get_tensor(name)
    raise NotImplementedError(f"the base LM head ({names[0]}) is not in the checkpoint's safetensors files")
