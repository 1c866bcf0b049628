"""Model loading: Hub ids and local folders take the same path; the converted-model cache heals itself.

pytest tests/test_models.py
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from bench import models
from bench.config import ModelConfig
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


def test_embedded_pins_match_requirements_file():
    pins = {line.strip() for line in Path("requirements-embedded.txt").read_text().splitlines() if "==" in line}
    conf = Path(__file__).parent.parent / "conf"
    used = {line.split(":", 1)[1].strip() for p in conf.rglob("*.yaml") for line in p.read_text().splitlines()
            if line.startswith("package:")}
    from bench.tasks.bbc import PACKAGE
    from bench.models.tiny import MINILM_PIN, SMOLLM2_PIN

    assert used | {PACKAGE, MINILM_PIN, SMOLLM2_PIN} == pins
