"""Cold loads: the operating system's file cache of a folder's files dropped before a timed load, and how much of
them is still cached after, so a load figure says whether it read the disk or memory.

Files just written (fresh adapters, full copies) sit in the page cache: a load right after reads memory, not disk,
and times what a server that has just written its adapters would see, not one that starts cold. The cache is dropped
file by file (posix_fadvise DONTNEED after the dirty pages are written back); where that leaves pages cached and
this process may, the whole machine's clean cache is dropped (/proc/sys/vm/drop_caches). The pages still cached
are then counted (mincore), and the figure's label says which of these happened.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import mmap
import os
from pathlib import Path

DROP_CACHES = Path("/proc/sys/vm/drop_caches")
PAGE_BYTES = mmap.PAGESIZE


def files(folders) -> list[Path]:
    return sorted(p for folder in folders for p in Path(folder).rglob("*") if p.is_file())


@functools.cache
def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    if not all(hasattr(libc, name) for name in ("mmap", "munmap", "mincore")):
        return None
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    return libc


def _cached_pages(path: Path) -> tuple[int, int] | None:
    """(pages of the file in the page cache, pages of the file), or None where mincore cannot tell. Mapping a file
    and asking mincore reads no page in."""
    libc, size = _libc(), path.stat().st_size
    if libc is None:
        return None
    pages = -(-size // PAGE_BYTES)
    if pages == 0:
        return 0, 0
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            return None
        try:
            vector = (ctypes.c_ubyte * pages)()
            if libc.mincore(address, size, vector) != 0:
                return None
            return sum(byte & 1 for byte in vector), pages
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)


def cached_fraction(paths: list[Path]) -> float | None:
    """Share of the files' pages in the page cache now (None where mincore is not there)."""
    counts = [_cached_pages(path) for path in paths]
    if not counts or any(c is None for c in counts):
        return None
    total = sum(pages for _, pages in counts)
    return sum(cached for cached, _ in counts) / total if total else 0.0


def _fadvise(paths: list[Path]) -> bool:
    if not hasattr(os, "posix_fadvise"):
        return False
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(fd)  # dirty pages cannot be dropped until written back
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def _drop_all() -> bool:
    try:
        os.sync()
        DROP_CACHES.write_text("1")
        return True
    except OSError:
        return False


def drop(folders) -> dict:
    """Drop the file cache of every file under `folders`; {"cache": how, "cached_fraction": share still cached}."""
    paths = files(folders)
    how = "posix_fadvise DONTNEED" if _fadvise(paths) else None
    left = cached_fraction(paths)
    if (how is None or left) and _drop_all():
        how, left = "/proc/sys/vm/drop_caches", cached_fraction(paths)
    if how is None:
        return {"cache": "warm: the file cache cannot be dropped here", "cached_fraction": left}
    if left is None:
        return {"cache": f"cold? {how} (mincore could not count the pages left)", "cached_fraction": None}
    label = "cold" if left < 0.05 else "warm"  # a few pages can be mapped or read ahead again by others
    return {"cache": f"{label}: {how}, {left:.0%} of the pages still cached", "cached_fraction": left}
