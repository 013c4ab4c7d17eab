"""Never a stale copy from Hugging Face's cache: `datasets` converts local parquet/arrow files and image folders
to Arrow files in its cache once, and knows each source file by its mtime alone. A file replaced keeping its
mtime (`cp -p`, `rsync -a`, `tar x` of another version, or a rewrite within a coarse clock's tick: FAT 2 s,
HFS+ 1 s, exFAT 10 ms) would be served from the old copy, silently.

So each cached copy gets a stamp in its own folder (where `datasets` keeps the copy's Arrow files and
dataset_info.json, and removes them together): the fingerprint of the source (locate.Source.fingerprint: path +
size + mtime, and content for young files) it was built from. A copy whose stamp differs from the source's
fingerprint now, or that has no stamp and was not built just now, is built again (REBUILD: without checking the
new split sizes against the old copy's) and stamped. A copy in a cache this process cannot write is used as it is.
"""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from simclr_core.atomic_files import atomic_write_text

STAMP_NAME = "simclr_harness_source.txt"
# The keyword arguments of `datasets.load_dataset` that build the cached copy again from the source files.
REBUILD = {"download_mode": "force_redownload", "verification_mode": "no_checks"}
# A copy whose Arrow file is younger than the call by at most this much (seconds) was built by it (FAT's 2 s tick).
_BUILT_NOW_S = 2.5


def load_current(load: Callable[..., Any], fingerprint: str) -> Any:
    """`load({})`, or `load(REBUILD)` when the cached copy it returned was built from other files than those
    whose fingerprint is `fingerprint` (taken before the first load)."""
    started = time.time()
    dataset = load({})
    first = _first_arrow_file(dataset)
    if first is None or not os.access(first.parent, os.W_OK):   # in memory, or a read-only cache: as it is
        return dataset
    stamp = first.parent / STAMP_NAME
    try:
        built_from: str | None = stamp.read_text()
    except OSError:
        built_now = os.stat(first).st_mtime >= started - _BUILT_NOW_S
        built_from = None
    else:
        built_now = False
    if built_from != fingerprint and not built_now:
        dataset = load(REBUILD)
    if built_from != fingerprint:
        try:
            atomic_write_text(stamp, fingerprint)
        except OSError as exc:             # the copy is current; the next load rebuilds it once more
            warnings.warn(f"could not record which files Hugging Face's cached copy {first} was built from "
                          f"({exc.strerror or exc}); a later run will build it again", stacklevel=2)
    return dataset


def _first_arrow_file(dataset: Any) -> Path | None:
    files = getattr(dataset, "cache_files", None) or []
    return Path(files[0]["filename"]) if files else None
