"""An image folder's index (its image files, class folder by class folder, and their labels), listed once, then kept.

Listing a split of ImageNet's 1.28 M files takes seconds on a local disk and minutes on a cluster's network file
system, and each process of a run would list it. The index is kept in two places, each valid while every folder
it was listed from keeps its mtime (folder_memo.py says why that suffices for names):
  - in the process (folder_memo.from_folders): the launcher's check and the run's own open list it once;
  - on disk beside the decoded splits (cache.CachedIndex, keyed by the folder's path), written by one process at a
    time under the entry's lock, so that the other processes of a job, and later runs, read it instead of listing
    the folder: one `stat` per listed folder (about 2,000 for ImageNet) checks it.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from simclr_core.data.cache import CachedIndex
from simclr_core.data.folder_memo import from_folders, mtime_ns, settled
from simclr_core.data.locate import folder_classes
from simclr_core.data.tar_index import IMAGE_SUFFIXES

# The on-disk entry's layout; another version is listed again.
FORMAT = 1

Index = tuple[tuple[str, ...], np.ndarray, int]       # (image paths, their labels, the number of classes)


def folder_index(dataset: str, root: Path, split_dir: Path) -> Index:
    """The index of the split in `split_dir` of the image folder `root`: labels are the places of the class folders
    among those of all splits (folder_classes), images at any depth below their class folder, in listing order."""
    return from_folders(("folder_index", str(root), str(split_dir)),
                        lambda: _kept_or_listed(dataset, root, split_dir))


def _kept_or_listed(dataset: str, root: Path, split_dir: Path) -> tuple[Index, list[str]]:
    cached = CachedIndex.for_key(dataset, split_dir.name, "folder-index", FORMAT, os.path.abspath(root),
                                 os.path.abspath(split_dir))
    kept = _kept(cached, root)
    if kept is not None:
        return kept
    with cached.lock():                          # the other processes of a job wait here, then read what it wrote
        kept = _kept(cached, root)
        if kept is not None:
            return kept
        started_ns = time.time_ns()
        index, folders = _list(root, split_dir)
        mtimes = [mtime_ns(folder) for folder in folders]
        if settled(mtimes, started_ns):
            paths, labels, num_classes = index
            below = len(str(root)) + 1
            cached.write({"paths": _encoded([p[below:] for p in paths]), "labels": labels,
                          "num_classes": np.int64(num_classes), "folders": _encoded(folders),
                          "mtimes": np.asarray(mtimes, dtype=np.int64)})
        return index, folders


def _kept(cached: CachedIndex, root: Path) -> tuple[Index, list[str]] | None:
    """The entry on disk while every folder it lists has the mtime it had; None otherwise (or without one)."""
    stored = cached.read()
    if stored is None or not {"paths", "labels", "num_classes", "folders", "mtimes"} <= stored.keys():
        return None
    folders = _decoded(stored["folders"])
    if any(mtime_ns(folder) != int(mtime) for folder, mtime in zip(folders, stored["mtimes"].tolist())):
        return None
    prefix = str(root) + os.sep
    paths = tuple(prefix + p for p in _decoded(stored["paths"]))
    return (paths, stored["labels"].astype(np.int64), int(stored["num_classes"])), folders


def _list(root: Path, split_dir: Path) -> tuple[Index, list[str]]:
    """(the index, every folder listed for it) of a split's folder."""
    classes = folder_classes(root)
    listed = [str(root), *(str(d) for d in root.iterdir() if d.is_dir())]      # the splits' class folders
    paths, labels = [], []
    for label, cls in enumerate(classes):
        if not (split_dir / cls).is_dir():
            continue
        for folder, _, files in sorted(os.walk(split_dir / cls)):
            listed.append(folder)
            for f in sorted(files):
                if f.lower().endswith(IMAGE_SUFFIXES):
                    paths.append(os.path.join(folder, f))
                    labels.append(label)
    return (tuple(paths), np.asarray(labels, dtype=np.int64), len(classes)), listed


def _encoded(names: list[str]) -> np.ndarray:
    return np.asarray([n.encode("utf-8", "surrogateescape") for n in names], dtype=bytes)


def _decoded(array: np.ndarray) -> list[str]:
    return [b.decode("utf-8", "surrogateescape") for b in array.tolist()]


__all__ = ["FORMAT", "folder_index"]
