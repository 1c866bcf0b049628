"""K adapters to serve, as folders on disk: the checkpoints a sweep saved, or K freshly initialised ones.

Fresh adapters cost what trained ones cost (same tensors, same files) but score nothing: they are the method's own
initialisation plus Gaussian noise of std `serve.fresh_noise`, a different seed per adapter, so that the K differ
(LoRA starts with B = 0 and IA3 with ones: without noise every adapter would be the identity, and a swap or a mixed
batch could not be told from none).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

from bench.config import ConfigError, Unsupported
from bench.results.record import OK, RECORD_NAME, read
from bench.serve.config import FRESH, ServeTrial
from bench.serve.host import kind_of
from bench.trackers.storage import save

CHECKPOINT_DIR = "checkpoint"  # inside a trial folder: what train.save_checkpoint=true keeps (bench/trial.py)
SEED_STRIDE = 100_003  # adapter i of seed s draws its noise from seed s * SEED_STRIDE + i: no two coincide


def names(k: int) -> list[str]:
    return [f"task{i}" for i in range(k)]


def host_kind(cfg: ServeTrial, base_model, method, method_cfg, arch) -> tuple[str, object]:
    """(kind of host, the method applied to a copy of the base); Unsupported (recorded skipped) where the method
    edits base weights in place and has no adapter to swap."""
    tuned = method.apply(copy.deepcopy(base_model), method_cfg, arch)
    kind = kind_of(tuned)
    if kind is None:
        raise Unsupported(f"`method` ({cfg.trial.method.name!r}) trains the base model's own weights in place: it "
                          "cannot be served as a swappable adapter; K tasks take K full copies (the copies_* figures)")
    return kind, tuned


def fresh(tuned, k: int, seed: int, noise_std: float, folder: Path) -> list[Path]:
    """K adapters of the method applied in `tuned`, saved under folder/task<i>/ as a trained one would be."""
    import torch

    trained = {name: p for name, p in tuned.named_parameters() if p.requires_grad}
    start = {name: p.detach().clone() for name, p in trained.items()}
    paths = []
    for index, name in enumerate(names(k)):
        generator = torch.Generator(device="cpu").manual_seed(seed * SEED_STRIDE + index)
        with torch.no_grad():
            for key, parameter in trained.items():
                noise = torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype)
                parameter.copy_(start[key] + noise_std * noise.to(parameter.device))
        save(tuned, folder / name)
        paths.append(folder / name)
    return paths


def from_sweep(cfg: ServeTrial, source_path: str | None) -> list[Path]:
    """The first K checkpoints of this method and model under `serve.adapters` (trials of a sweep run with
    train.save_checkpoint=true); ConfigError naming the key when they are missing or of another base model."""
    folder = Path(cfg.serve.adapters).expanduser()
    method, model = cfg.trial.method.name, dataclasses.asdict(cfg.trial.model)
    mine, other_models = [], set()
    for path in sorted(folder.rglob(RECORD_NAME)):
        record = read(path)
        checkpoint = path.parent / CHECKPOINT_DIR
        if not record or record.get("status") != OK or not checkpoint.is_dir():
            continue
        if (record.get("identity") or {}).get("method") != method:
            continue
        if (record.get("config") or {}).get("model") == model:
            mine.append(checkpoint)
        else:
            other_models.add(str((record.get("identity") or {}).get("model")))
    for checkpoint in _bare_checkpoints(folder) if not mine and not other_models else []:
        _check_base(checkpoint, source_path, cfg)
        mine.append(checkpoint)
    if not mine and other_models:
        raise ConfigError(f"`serve.adapters` ({cfg.serve.adapters!r}) holds {method} checkpoints of another base "
                          f"model ({', '.join(sorted(other_models))}), not of {cfg.trial.model.name}")
    if len(mine) < cfg.serve.k:
        raise ConfigError(f"`serve.k` ({cfg.serve.k}) is more than the {len(mine)} saved {method} checkpoints of "
                          f"{cfg.trial.model.name} in `serve.adapters` ({cfg.serve.adapters!r}); run the sweep with "
                          f"train.save_checkpoint=true, or serve.adapters={FRESH} for cost only")
    return mine[: cfg.serve.k]


def _bare_checkpoints(folder: Path) -> list[Path]:
    """Adapter folders given directly (no trial record beside them): the folder itself or its subfolders."""
    def is_checkpoint(path: Path) -> bool:
        return (path / "adapter_config.json").is_file() or (path / "model.safetensors").is_file()

    return [folder] if is_checkpoint(folder) else sorted(p for p in folder.iterdir() if p.is_dir() and is_checkpoint(p))


def _check_base(checkpoint: Path, source_path: str | None, cfg: ServeTrial) -> None:
    """A peft adapter names the base it was made on; it must be this one (where both are local folders)."""
    config_file = checkpoint / "adapter_config.json"
    if not config_file.is_file() or source_path is None:
        return  # a bottleneck checkpoint: its tensors are checked against the model when loaded
    base = json.loads(config_file.read_text()).get("base_model_name_or_path")
    if base and Path(base).expanduser().exists() and Path(base).resolve() != Path(source_path).resolve():
        raise ConfigError(f"`serve.adapters` ({cfg.serve.adapters!r}): {checkpoint.name} was made on another base "
                          f"model ({base}), not on {cfg.trial.model.name} ({source_path})")
