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
from typing import NamedTuple

import numpy as np

from simclr_core.data.cache import CachedIndex
from simclr_core.data.folder_memo import from_folders, mtime_ns, settled
from simclr_core.data.locate import folder_classes, walk_folders
from simclr_core.data.tar_index import IMAGE_SUFFIXES

# The on-disk entry's layout; another version is listed again. 2: hidden folders skipped and folder links followed
# (as locate.walk_folders), the files not read counted (left_out). 3: links up or into another class folder of
# the split not followed.
FORMAT = 3

Index = tuple[tuple[str, ...], np.ndarray, int]       # (image paths, their labels, the number of classes)


class LeftOut(NamedTuple):
    """The entries of a split's class folders that are not read as images: how many of each kind ("hidden file",
    "hidden folder", ".txt file", "file without a suffix") and one of them."""
    kinds: dict[str, int]
    example: str

    def describe(self) -> str:
        ordered = sorted(self.kinds.items(), key=lambda kv: (-kv[1], kv[0]))
        counts = [f"{n:,} {kind}{'s' if n != 1 else ''}" for kind, n in ordered]
        listed = counts[0] if len(counts) == 1 else f"{', '.join(counts[:-1])} and {counts[-1]}"
        many = sum(self.kinds.values()) != 1
        return (f"{listed} (e.g. {self.example}) {'are' if many else 'is'} not read: images are files ending in "
                f"{', '.join(IMAGE_SUFFIXES)}, not hidden (no leading dot)")


def not_an_image(name: str) -> str | None:
    """Why the file called `name` is not read as an image: "hidden file" (a leading dot, as macOS's ._ and
    .DS_Store files), else its kind by suffix (".txt file"); None for an image."""
    if name.startswith("."):
        return "hidden file"
    if name.lower().endswith(IMAGE_SUFFIXES):
        return None
    suffix = os.path.splitext(name)[1].lower()
    return f"{suffix} file" if suffix else "file without a suffix"


def left_out_of(files: list[str], folders: list[str] = ()) -> LeftOut | None:
    """The LeftOut of the `files` that are not images (not_an_image) and of the `folders` not walked (hidden ones,
    and links back up or into another class folder: locate.walk_folders); None where there is none."""
    kinds, example = {}, None
    for path in files:
        kind = not_an_image(os.path.basename(path))
        if kind is not None:
            kinds[kind] = kinds.get(kind, 0) + 1
            example = example or path
    for path in folders:
        kind = "hidden folder" if os.path.basename(path).startswith(".") else "cyclic or cross-class folder link"
        kinds[kind] = kinds.get(kind, 0) + 1
        example = example or path
    return LeftOut(kinds, example) if kinds else None


def folder_index(dataset: str, root: Path, split_dir: Path) -> Index:
    """The index of the split in `split_dir` of the image folder `root`: labels are the places of the class folders
    among those of all splits (folder_classes), images at any depth below their class folder (hidden folders
    skipped, folder links followed once), in listing order."""
    return folder_listing(dataset, root, split_dir)[0]


def folder_listing(dataset: str, root: Path, split_dir: Path) -> tuple[Index, LeftOut | None]:
    """(folder_index's index, the files of the class folders it leaves out, None where it leaves out none)."""
    return from_folders(("folder_index", str(root), str(split_dir)),
                        lambda: _kept_or_listed(dataset, root, split_dir))


def _kept_or_listed(dataset: str, root: Path, split_dir: Path) -> tuple[tuple[Index, LeftOut | None], list[str]]:
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
        (index, left_out), folders = _list(dataset, root, split_dir)
        mtimes = [mtime_ns(folder) for folder in folders]
        if settled(mtimes, started_ns):
            paths, labels, num_classes = index
            below = len(str(root)) + 1
            kinds = left_out.kinds if left_out else {}
            cached.write({"paths": _encoded([p[below:] for p in paths]), "labels": labels,
                          "num_classes": np.int64(num_classes), "folders": _encoded(folders),
                          "mtimes": np.asarray(mtimes, dtype=np.int64),
                          "left_out_kinds": _encoded(list(kinds)), "left_out_counts": np.asarray(
                              list(kinds.values()), dtype=np.int64),
                          "left_out_example": _encoded([left_out.example] if left_out else [])})
        return (index, left_out), folders


_STORED = {"paths", "labels", "num_classes", "folders", "mtimes", "left_out_kinds", "left_out_counts",
           "left_out_example"}


def _kept(cached: CachedIndex, root: Path) -> tuple[tuple[Index, LeftOut | None], list[str]] | None:
    """The entry on disk while every folder it lists has the mtime it had; None otherwise (or without one)."""
    stored = cached.read()
    if stored is None or not _STORED <= stored.keys():
        return None
    folders = _decoded(stored["folders"])
    if any(mtime_ns(folder) != int(mtime) for folder, mtime in zip(folders, stored["mtimes"].tolist())):
        return None
    prefix = str(root) + os.sep
    paths = tuple(prefix + p for p in _decoded(stored["paths"]))
    kinds = dict(zip(_decoded(stored["left_out_kinds"]), stored["left_out_counts"].tolist()))
    left_out = LeftOut(kinds, _decoded(stored["left_out_example"])[0]) if kinds else None
    return ((paths, stored["labels"].astype(np.int64), int(stored["num_classes"])), left_out), folders


def _list(dataset: str, root: Path, split_dir: Path) -> tuple[tuple[Index, LeftOut | None], list[str]]:
    """((the index, the files it leaves out), every folder listed for it) of a split's folder."""
    classes = folder_classes(root, dataset)
    listed = [str(root), *(str(d) for d in root.iterdir() if d.is_dir())]      # the splits' class folders
    paths, labels, others, not_walked = [], [], [], []
    for label, cls in enumerate(classes):
        if not (split_dir / cls).is_dir():
            continue
        for folder, files, skipped in sorted(walk_folders(split_dir / cls, keep_out=split_dir)):
            listed.append(folder)
            not_walked.extend(os.path.join(folder, d) for d in skipped)
            for f in sorted(files):
                if not_an_image(f) is None:
                    paths.append(os.path.join(folder, f))
                    labels.append(label)
                else:
                    others.append(os.path.join(folder, f))
    index = (tuple(paths), np.asarray(labels, dtype=np.int64), len(classes))
    return (index, left_out_of(others, not_walked)), listed


def _encoded(names: list[str]) -> np.ndarray:
    return np.asarray([n.encode("utf-8", "surrogateescape") for n in names], dtype=bytes)


def _decoded(array: np.ndarray) -> list[str]:
    return [b.decode("utf-8", "surrogateescape") for b in array.tolist()]


__all__ = ["FORMAT", "LeftOut", "folder_index", "folder_listing", "left_out_of", "not_an_image"]
