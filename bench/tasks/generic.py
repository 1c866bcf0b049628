"""Any dataset: local csv/json/parquet files or `datasets.load_dataset` arguments, with named columns."""

from __future__ import annotations

from pathlib import Path

from bench.config import ConfigError, TaskConfig, closest

BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


def _load(cfg: TaskConfig):
    import datasets

    args = dict(cfg.dataset)
    if cfg.source == "files":
        files = args.get("data_files")
        if not files:
            raise ConfigError("`task.dataset.data_files` is required with `task.source=files`")
        first = Path(next(iter(files.values())) if isinstance(files, dict) else files if isinstance(files, str) else files[0])
        if not first.exists():
            raise ConfigError(f"`task.dataset.data_files` ({str(first)!r}) does not exist")
        builder = BUILDERS.get(first.suffix)
        if builder is None:
            raise ConfigError(f"`task.dataset.data_files` ({str(first)!r}) must end in one of {', '.join(BUILDERS)}")
        args = {"path": builder, **args}
    if "path" not in args:
        raise ConfigError("`task.dataset.path` is required with `task.source=hub` (a datasets.load_dataset name)")
    try:
        return datasets.load_dataset(**args)
    except (FileNotFoundError, ConnectionError, ValueError) as error:
        raise ConfigError(f"`task.dataset` ({args}) could not be loaded: {str(error).splitlines()[0]}") from error


def rows(cfg: TaskConfig) -> dict[str, list[dict]] | list[dict]:
    """Rows with text/label, as given splits {"train": [...], "test": [...]} or one list to split."""
    loaded = _load(cfg)
    splits = {}
    for split_name, split in loaded.items():
        for key in ("text_column", "label_column"):
            column = getattr(cfg, key)
            if column not in split.column_names:
                raise ConfigError(
                    f"`task.{key}` ({column!r}) is not a column of split {split_name!r}{closest(column, split.column_names)}"
                )
        splits[split_name] = [
            {"text": str(r[cfg.text_column]), "label": r[cfg.label_column], "group": r[cfg.label_column] if cfg.kind == "classification" else 0}
            for r in split
        ]
    if set(splits) == {"train"}:
        return splits["train"]
    return splits
