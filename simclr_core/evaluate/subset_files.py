"""Fixed label subsets for fine-tuning, read from files (eval.finetune_subset_files).

"we sample 1% or 10% of the labeled ILSVRC-12 training datasets in a class-balanced way" (Sec. 6); the official
repository publishes the two subsets it used as file lists (imagenet_subsets/1percent.txt and 10percent.txt, one
image file name per line, e.g. n01440764_10026.JPEG). With eval.finetune_subset_files, fraction i of
eval.finetune_fractions fine-tunes on the images file i lists instead of a seeded class-balanced draw; the
fraction then only names the metrics (finetune_top1_1pct, ...).

A file lists one training image per line, in one of two forms (blank lines are skipped):
  names  the path the dataset stores with the image (the image column's `path`: "airplane/0000.jpg" in the CIFAR-10
         parquet files, the full path in an image folder) or a tail of it that ends at a "/"
         ("n01440764_10026.JPEG" finds ".../train/n01440764/n01440764_10026.JPEG");
  rows   when the first line is an integer: every line is a row of the training split, counted from 0 over the
         split's files in order (all its rows, before data.train_limit keeps some), for datasets that store no paths.
On the streamed data path (data.loader=stream) names match the paths the stream's index holds (the same stored
paths; a tar shard's member names) and rows count in the index's order (files in order; an image folder's class
folders and files sorted by name).
Refused with a ConfigError naming the file, the line and the valid form: a missing or empty file, a row that is not
a non-negative integer, a line listed twice (checked when the config is validated), and a name that matches no
image of the training split or several, a row outside the split or not among the data.train_limit images the run
holds (checked against the data before pretraining: `require_subset_data`).
On the resident path, a listed image that could not be decoded is left out of the data (data/bad_images.py): it is
left out of the subset too, with a warning naming the file's line and the image.
"""
from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from simclr_core.validation import ConfigError

KEY = "eval.finetune_subset_files"
NAMES_FORM = "its stored path or a tail of it ending at '/', e.g. n01440764_10026.JPEG or airplane/0000.jpg"
ROWS_FORM = "its row in the training split, an integer >= 0 (a file whose first line is an integer)"
BOTH_FORMS = f"one training image per line, named by {NAMES_FORM}, or given by {ROWS_FORM}"


@dataclass(frozen=True)
class SubsetList:
    """One file's entries: (line number, text) in file order; `rows` says which form it is in."""
    path: str
    rows: bool
    entries: tuple[tuple[int, str], ...]


def read_subset_file(path: str) -> SubsetList:
    """The entries of one subset file; ConfigError on a missing or empty file, a bad row, a repeated line."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"{KEY}: {path!r} is not a file; give one file per label fraction, listing "
                          f"{BOTH_FORMS}")
    entries = tuple((n, line.strip()) for n, line in enumerate(file.read_text().splitlines(), 1) if line.strip())
    if not entries:
        raise ConfigError(f"{KEY}: {path} lists no image; it must list {BOTH_FORMS}")
    rows = entries[0][1].isdigit()
    seen: dict[str, int] = {}
    for number, text in entries:
        if rows and not text.isdigit():
            raise ConfigError(f"{KEY}: {path} line {number}: {text!r} is not a row number; the file's first line "
                              f"is one, so every line must give a training image by {ROWS_FORM}")
        key = str(int(text)) if rows else text
        if key in seen:
            raise ConfigError(f"{KEY}: {path} line {number}: {text!r} repeats line {seen[key]}; list each image "
                              "once")
        seen[key] = number
    return SubsetList(str(path), rows, entries)


def require_fractions_and_files(fractions: Sequence[float], files: Sequence[str], needed: bool) -> None:
    """Config validation of eval.finetune_fractions and eval.finetune_subset_files (each fraction's range is
    checked by the caller): distinct fractions, none missing where fine-tuning runs, one readable file each."""
    if needed and not fractions:
        raise ConfigError("eval.finetune_fractions=() is empty but eval.protocols runs 'finetune'; give label "
                          "fractions in (0, 1], e.g. eval.finetune_fractions=0.01,0.1")
    names = [f"{fraction * 100:g}pct" for fraction in fractions]
    if len(set(names)) != len(names):
        raise ConfigError(f"eval.finetune_fractions={tuple(fractions)!r} repeats a fraction (metric names "
                          f"{names}); give each label fraction once")
    if files and len(files) != len(fractions):
        raise ConfigError(f"{KEY}={tuple(files)!r} gives {len(files)} file(s) for the {len(fractions)} label "
                          f"fraction(s) eval.finetune_fractions={tuple(fractions)!r}; give one file per fraction, "
                          "in the same order, or none (class-balanced subsets drawn with the run's seed)")
    for path in files:
        read_subset_file(path)


def subset_positions(listed: SubsetList, paths: Sequence[str | None], rows: np.ndarray, total: int,
                     limit_note: str = "", left_out: Sequence[tuple[int, str | None, str]] = ()) -> np.ndarray:
    """Positions (sorted int64) in the held training images of the images `listed` names. Image i is row `rows[i]`
    of the split's `total` rows, stored as `paths[i]`; `limit_note` says why rows may be missing (train_limit);
    `left_out`: (row, path, "where (why)") of images not held because they could not be decoded, which the subset
    leaves out with a warning."""
    lost: list[str] = []
    if listed.rows:
        lost_rows = {row: text for row, _, text in left_out}
        out = _by_rows(listed, np.asarray(rows, dtype=np.int64), total, limit_note, lost_rows, lost)
    else:
        out = _by_names(listed, paths, limit_note, [(path, text) for _, path, text in left_out], lost)
    if lost and not len(out):
        raise ConfigError(f"{KEY}: none of the {len(lost)} images {listed.path} lists could be decoded (the first: "
                          f"{lost[0]}); re-encode them or list others")
    if lost:
        warnings.warn(f"{KEY}: {len(lost)} of the {len(lost) + len(out)} images {listed.path} lists could not be "
                      f"decoded and are left out of its subset ({'; '.join(lost[:3])}{' ...' if len(lost) > 3 else ''})"
                      f": fine-tuning on the other {len(out)}", stacklevel=3)
    return out


def _by_rows(listed: SubsetList, rows: np.ndarray, total: int, limit_note: str, lost_rows: dict[int, str],
             lost: list[str]) -> np.ndarray:
    out = []
    for number, text in listed.entries:
        row = int(text)
        if row >= total:
            raise ConfigError(f"{KEY}: {listed.path} line {number}: row {row} is outside the training split's "
                              f"{total} rows; valid rows lie in [0, {total - 1}]")
        if row in lost_rows:
            lost.append(f"line {number}: {lost_rows[row]}")
            continue
        at = int(np.searchsorted(rows, row))
        if at == len(rows) or rows[at] != row:
            raise ConfigError(f"{KEY}: {listed.path} line {number}: row {row} is not among the {len(rows)} training "
                              f"images this run holds{limit_note}")
        out.append(at)
    return np.sort(np.asarray(out, dtype=np.int64))


def _by_names(listed: SubsetList, paths: Sequence[str | None], limit_note: str,
              lost_paths: Sequence[tuple[str | None, str]], lost: list[str]) -> np.ndarray:
    by_base: dict[str, list[int]] = defaultdict(list)
    for i, path in enumerate(paths):
        if path:
            by_base[path.replace("\\", "/").rsplit("/", 1)[-1]].append(i)
    if not by_base:
        raise ConfigError(f"{KEY}: {listed.path} names images, but the training split stores no image paths; give "
                          f"each image by {ROWS_FORM}")
    example = next(p for p in paths if p)
    out, taken = [], {}
    for number, name in listed.entries:
        name = name.replace("\\", "/").strip("/")
        found = [i for i in by_base.get(name.rsplit("/", 1)[-1], ()) if _names(paths[i], name)]
        gone = [] if found else [text for path, text in lost_paths if path and _names(path, name)]
        if len(gone) == 1:
            lost.append(f"line {number}: {gone[0]}")
            continue
        if not found:
            raise ConfigError(f"{KEY}: {listed.path} line {number}: {name!r} is not among the {len(paths)} training "
                              f"images this run holds{limit_note}; each line must name one by {NAMES_FORM} (this "
                              f"split stores paths such as {example!r})")
        if len(found) > 1:
            raise ConfigError(f"{KEY}: {listed.path} line {number}: {name!r} matches {len(found)} training images "
                              f"({paths[found[0]]!r}, {paths[found[1]]!r}, ...); give a longer tail of the path")
        if found[0] in taken:
            raise ConfigError(f"{KEY}: {listed.path} line {number}: {name!r} is the image of line "
                              f"{taken[found[0]]} ({paths[found[0]]!r}) again; list each image once")
        taken[found[0]] = number
        out.append(found[0])
    return np.sort(np.asarray(out, dtype=np.int64))


def _names(path: str, name: str) -> bool:
    """Whether `name` (a subset file's line, with "/" separators) names the stored `path`."""
    path = path.replace("\\", "/")
    return path == name or path.endswith("/" + name)


def official_subsets(cfg) -> list[np.ndarray]:
    """Per file of cfg.eval.finetune_subset_files, the positions of its images in the run's training images (the
    order load_images holds them); ConfigError naming the file and line of the first image not found."""
    from simclr_core.data.image_paths import image_paths

    files = cfg.eval.finetune_subset_files
    if not files:
        return []
    from simclr_core.data.feed import resolve_loader

    if resolve_loader(cfg.data) == "stream":          # positions in the stream's index (whole split, no limit)
        from simclr_core.data.encoded import open_encoded

        split = open_encoded(cfg.data, "train")
        paths, rows = split.stored_paths(), np.arange(len(split), dtype=np.int64)
        return [subset_positions(read_subset_file(path), paths, rows, len(split), "") for path in files]
    held = image_paths(cfg.data, "train")
    limit = cfg.data.train_limit
    note = f" (data.train_limit={limit} keeps {len(held)} of {held.total})" if limit is not None else ""
    return [subset_positions(read_subset_file(path), held.paths, held.rows, held.total, note, held.left_out)
            for path in files]


def require_subset_data(cfg) -> None:
    """Protocol data check (train() calls it before pretraining): every listed image is in the training split."""
    if "finetune" in cfg.eval.protocols:
        official_subsets(cfg)
