"""Any dataset: local csv / tsv / json / jsonl / parquet files (source `files`) or `datasets.load_dataset`
arguments (source `hub`), with named text and label columns.

Own data is checked before any model loads: a file that does not parse, a row without its text or label, an empty
file, one class only, or test labels never seen in training each stop the trial with one line naming the config
key, the file (and the row) and the value.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from bench.config import ConfigError, TaskConfig, closest

BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
FORMATS = {".csv": "CSV", ".tsv": "TSV", ".json": "JSON", ".jsonl": "JSON lines", ".parquet": "Parquet"}
# index_col=False: a row with more fields than the header is an error (pandas warns; we raise), not an index.
OPTIONS = {".csv": {"index_col": False}, ".tsv": {"index_col": False, "delimiter": "\t"}}
SPLIT_NAMES = {"train": ("train",), "validation": ("validation", "valid", "val", "dev"), "test": ("test",)}
KEY = "task.dataset.data_files"


def file_rows(cfg: TaskConfig) -> dict[str, list[dict]] | list[dict]:
    """Rows of each split given (or found in a folder); one list when only training rows are given (split later)."""
    files = split_files(cfg.dataset.get("data_files"))
    splits = {split: [row for path in paths for row in _rows(cfg, key, path)] for split, (key, paths) in files.items()}
    if cfg.kind == "classification":
        _check_classes(cfg, splits, {split: describe(key, paths) for split, (key, paths) in files.items()})
    return splits["train"] if set(splits) == {"train"} else splits


def split_files(data_files) -> dict[str, tuple[str, list[Path]]]:
    """{split: (config key, files)} from `task.dataset.data_files`: a file, a folder, a list, or {split: file(s)}."""
    if isinstance(data_files, dict):
        given = {split: files for split, files in data_files.items() if files}
        keys = {split: f"{KEY}.{split}" for split in given}
    else:
        given, keys = ({"train": data_files}, {"train": KEY}) if data_files else ({}, {})
    if not given:
        raise ConfigError(f"`{KEY}` is required with `task.source=files`: a file, a folder, or "
                          f"{KEY}.train=FILE and {KEY}.test=FILE")
    if "train" not in given:
        raise ConfigError(f"`{KEY}` ({given}) has no training file: add {KEY}.train=FILE")
    if set(given) == {"train"} and isinstance(given["train"], str) and Path(given["train"]).expanduser().is_dir():
        return _folder(keys["train"], Path(given["train"]).expanduser())
    return {split: (keys[split], [_checked(keys[split], path) for path in _as_list(files)])
            for split, files in given.items()}


def describe(key: str, paths: list[Path]) -> str:
    return f"`{key}` ({', '.join(repr(str(p)) for p in paths)})"


def _as_list(files) -> list[str]:
    return [files] if isinstance(files, str) else list(files)


def _checked(key: str, name) -> Path:
    path = Path(str(name)).expanduser()
    if not path.is_file():
        raise ConfigError(f"`{key}` ({str(name)!r}) is not a file" if path.exists() else
                          f"`{key}` ({str(name)!r}) does not exist")
    if path.suffix.lower() not in BUILDERS:
        raise ConfigError(f"`{key}` ({str(name)!r}) must end in one of {', '.join(BUILDERS)}")
    return path


def _folder(key: str, folder: Path) -> dict[str, tuple[str, list[Path]]]:
    """A folder's data files, by split where their names say it (train.csv, dev.jsonl, test-0.parquet), else all
    of them as the rows to split."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in BUILDERS)
    if not files:
        raise ConfigError(f"`{key}` ({str(folder)!r}) holds no {', '.join(BUILDERS)} file")
    by_split = {split: [p for p in files if p.stem.lower().startswith(names)] for split, names in SPLIT_NAMES.items()}
    by_split = {split: paths for split, paths in by_split.items() if paths}
    if not by_split:
        return {"train": (key, files)}
    if "train" not in by_split:
        raise ConfigError(f"`{key}` ({str(folder)!r}) has split files but none named train*")
    return {split: (key, paths) for split, paths in by_split.items()}


def _rows(cfg: TaskConfig, key: str, path: Path) -> list[dict]:
    """Rows of one file with text / label / group, every one checked for its text and label."""
    loaded = _load_file(key, path)
    _check_columns(cfg, loaded.column_names, repr(str(path)))
    rows = []
    for i, row in enumerate(loaded):
        for column_key in ("text_column", "label_column"):
            if row[getattr(cfg, column_key)] is None:
                raise ConfigError(f"`task.{column_key}` ({getattr(cfg, column_key)!r}) has no value in "
                                  f"{_where(path, i)} of {str(path)!r}")
        rows.append(_row(cfg, row))
    return rows


def _check_columns(cfg: TaskConfig, columns: list[str], where: str) -> None:
    for column_key in ("text_column", "label_column"):
        column = getattr(cfg, column_key)
        if column not in columns:
            raise ConfigError(f"`task.{column_key}` ({column!r}) is not a column of {where}{closest(column, columns)}")


def _row(cfg: TaskConfig, row: dict) -> dict:
    """text / label, and the group a stratified split keeps in proportion (the class; none for generation)."""
    label = row[cfg.label_column]
    return {"text": str(row[cfg.text_column]), "label": label, "group": label if cfg.kind == "classification" else 0}


def _where(path: Path, index: int) -> str:
    """Where row `index` stands in the file, as an editor shows it."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return f"line {index + 2}"  # after the header
    return f"line {index + 1}" if suffix == ".jsonl" else f"row {index + 1}"


def _load_file(key: str, path: Path):
    """One file through datasets' own builder; what its parser says about a bad file, on one line."""
    import datasets
    import pandas as pd
    from datasets.exceptions import DatasetGenerationError

    if path.stat().st_size == 0:
        raise ConfigError(f"`{key}` ({str(path)!r}) is empty")
    suffix = path.suffix.lower()
    verbosity, bars = datasets.logging.get_verbosity(), datasets.is_progress_bar_enabled()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # its JSON loader logs the error we report
    datasets.disable_progress_bars()  # one small file: a bar would only bury the trial's own lines
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return datasets.load_dataset(BUILDERS[suffix], data_files=str(path), split="train",
                                         **OPTIONS.get(suffix, {}))
    except (DatasetGenerationError, ValueError, OSError) as error:
        if "corresponds to no data" in str(error):
            raise ConfigError(f"`{key}` ({str(path)!r}) has no rows") from None
        reason = _reason(error)
        if suffix == ".jsonl":  # pyarrow counts JSON rows from 0; an editor counts lines from 1
            reason = re.sub(r"in row (\d+)$", lambda found: f"in line {int(found.group(1)) + 1}", reason)
        raise ConfigError(f"`{key}` ({str(path)!r}) is not valid {FORMATS[suffix]}: {reason}") from None
    finally:
        datasets.logging.set_verbosity(verbosity)
        if bars:
            datasets.enable_progress_bars()


def _reason(error: BaseException) -> str:
    """What the parser itself said (pandas, pyarrow), not the datasets wrapper around it."""
    cause = error
    while type(cause).__module__.startswith("datasets") and (cause.__cause__ or cause.__context__):
        cause = cause.__cause__ or cause.__context__
    text = str(cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__


def _check_classes(cfg: TaskConfig, splits: dict[str, list[dict]], origin: dict[str, str]) -> None:
    """Two classes at least, and no class to evaluate on that training never showed."""
    trained = {str(r["label"]) for r in splits["train"]}
    if len(trained) < 2:
        raise ConfigError(f"`task.label_column` ({cfg.label_column!r}) has one class only ({', '.join(trained)!r}) in "
                          f"{origin['train']}: classification needs two or more")
    for split, rows in splits.items():
        unseen = sorted({str(r["label"]) for r in rows} - trained)
        if unseen:
            shown = ", ".join(repr(label) for label in unseen[:5]) + (" ..." if len(unseen) > 5 else "")
            raise ConfigError(f"{origin[split]} has labels never seen in training ({origin['train']}): {shown}")


def hub_rows(cfg: TaskConfig) -> dict[str, list[dict]] | list[dict]:
    """Rows of a `datasets.load_dataset(**task.dataset)` data set, per split (one list when it has only train)."""
    import datasets

    args = dict(cfg.dataset)
    if not args.get("path") or args.get("path") == "???":
        raise ConfigError("`task.dataset.path` is required with `task.source=hub` (a datasets.load_dataset name)")
    try:
        loaded = datasets.load_dataset(**args)
    except (FileNotFoundError, ConnectionError, ValueError) as error:
        raise ConfigError(f"`task.dataset` ({args}) could not be loaded: {str(error).splitlines()[0]}") from error
    splits = {}
    for split_name, split in loaded.items():
        _check_columns(cfg, split.column_names, f"split {split_name!r}")
        splits[split_name] = [_row(cfg, row) for row in split]
    return splits["train"] if set(splits) == {"train"} else splits
