"""Files that readers share with writers: JSON written atomically (a reader sees the old file or the new one, never
half of one), read back as None when missing or torn, and a file lock per cache entry so parallel trials fill it once.
Records, caches, sweep and rank files all go through here."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from filelock import FileLock


def replace_atomic(path: Path, write) -> None:
    """`write(temp_path)` fills a temp file in the same folder; fsync, then rename over `path`: a reader (or a
    machine that lost power) sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(temp)
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)  # mkstemp makes owner-only files; results are shared (clusters, teams)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, payload, indent: int | None = 2) -> None:
    """JSON through replace_atomic."""
    def dump(temp: str) -> None:
        with open(temp, "w") as handle:
            json.dump(payload, handle, indent=indent, separators=None if indent else (",", ":"), default=str)

    replace_atomic(path, dump)


def read_json(path: Path):
    """The JSON a file holds, or None when it is missing or torn (the counterpart of write_atomic)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def lock(where: Path):
    """The lock file beside `where` (a cache entry, a folder being built): one process fills it, the others wait."""
    Path(where).parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(where) + ".lock")
