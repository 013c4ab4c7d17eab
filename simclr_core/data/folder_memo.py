"""What a listing of a folder tree gave, kept in this process while none of the folders it listed has changed.

A run lists an image folder several times before its first step: where the data lies (locate.py), the split's
index (encoded.open_folder) and the data's identity, in the launcher's check and again in the run. For ImageNet's
1.33 million files each listing takes seconds on a local disk and minutes on a cluster's network file system.

A folder's mtime changes whenever an entry is added to it, removed or renamed, so the names a listing found, and
the folders below it, are unchanged while every listed folder keeps its mtime: one `stat` per folder (about a
thousand for ImageNet) checks that. A listing is not kept when a folder it read was modified within RACY_MTIME_S of
its start, since a change within the file system's timestamp granularity could then keep the mtime. What a memo
keeps are names; the files' contents are read, or stat'ed, by those who need them.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable

# A file or folder modified this recently (seconds) may change again within its file system's timestamp granularity
# (FAT 2 s, HFS+ and ext3 1 s, exFAT 10 ms) keeping its mtime (and, for a file, its size).
RACY_MTIME_S = 2.5


@dataclass(frozen=True)
class _Entry:
    value: Any
    mtimes: tuple[tuple[str, int], ...]       # (folder, st_mtime_ns) of every folder the value was read from


_entries: dict[Hashable, _Entry] = {}
_lock = threading.Lock()


def mtime_ns(folder: str) -> int | None:
    """The folder's mtime in ns; None where it is gone (or unreadable)."""
    try:
        return os.stat(folder).st_mtime_ns
    except OSError:
        return None


def settled(mtimes: Iterable[int | None], started_ns: int) -> bool:
    """Whether a listing begun at `started_ns` (time.time_ns()) of folders with these mtimes may be kept: every
    folder still there and last modified RACY_MTIME_S or more before the listing began."""
    racy_from = started_ns - int(RACY_MTIME_S * 1e9)
    return all(mtime is not None and mtime < racy_from for mtime in mtimes)


def from_folders(key: Hashable, build: Callable[[], tuple[Any, Iterable[str]]]) -> Any:
    """`build()`'s value, which returns (value, the folders it listed), from this process's memo under `key`
    while each of those folders keeps the mtime it had; else built again (and kept unless a folder is racy)."""
    with _lock:
        entry = _entries.get(key)
    if entry is not None and all(mtime_ns(folder) == mtime for folder, mtime in entry.mtimes):
        return entry.value
    started_ns = time.time_ns()
    value, folders = build()
    mtimes = tuple((folder, mtime_ns(folder)) for folder in dict.fromkeys(folders))
    with _lock:
        if settled((mtime for _, mtime in mtimes), started_ns):
            _entries[key] = _Entry(value, mtimes)
        else:
            _entries.pop(key, None)
    return value


def forget() -> None:
    """Drop every kept listing (tests; a process that knows its folders changed without their mtimes)."""
    with _lock:
        _entries.clear()


__all__ = ["RACY_MTIME_S", "forget", "from_folders", "mtime_ns", "settled"]
