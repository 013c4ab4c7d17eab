"""An index of encoded images: where each image's bytes are and its label, so that training can stream them.

`open_encoded(cfg, split)` finds the split as `load_images` does (locate.py) and returns an `EncodedSplit`:
labels, the number of classes, `read(indices) -> [bytes]` and `where(index) -> "row 17 of /x/train.parquet"`.
Nothing is decoded. Four layouts:

  - parquet shards (the Hugging Face layout, e.g. the Hub's ImageNet): read by row group, the unit of
    parquet's compression; only the label column is read to build the index;
  - an image folder (class folders of JPEG/PNG files): one file per image; its listing is kept in the process
    and on disk while none of its folders changes (folder_index.py);
  - arrow files and `save_to_disk` folders: memory-mapped by `datasets`, read row by row;
  - WebDataset tar shards (key.jpg + key.cls): each image's offset and size in its shard, read by seeking;
    building it reads every member's header, so this index is cached (data/cache.py: CachedIndex).

The order of an epoch (`epoch_order`) is a pure function of (seed, epoch, rank, world), so a resumed run reads
what an uninterrupted one would have, and the processes of a run read disjoint images. Where single images
are cheap to reach (folders, arrow, tar) it is the resident path's order: one permutation of the whole split,
process r taking rows r*b..(r+1)*b-1 of each batch. Parquet rows are reached a row group at a time, so there
the row groups (cut into pieces where a group is large against a process's share) are dealt to the processes
by size, and each process shuffles the images within windows of WINDOW_UNITS pieces: a process holds at most
that many (still encoded) row groups in memory, however large the dataset.
"""
from __future__ import annotations

import io
import os
import threading
import warnings
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from simclr_core import seeding
from simclr_core.config import DataConfig
from simclr_core.data.cache import CachedIndex
from simclr_core.data.catalog import SPLITS, DatasetSpec, dataset_spec
from simclr_core.data.class_names import (class_ids, dataset_classes, find_label_column, label_column,
                                          warn_of_look_alike_names)
from simclr_core.data.decode import mixed_sizes_error
from simclr_core.data.folder_index import LeftOut, folder_listing, left_out_of, not_an_image
from simclr_core.data.image_column import below, encoded_pairs, image_column, stored_paths
from simclr_core.data.images import integer_labels, warn_of_sparse_ids
from simclr_core.data.locate import Source, folder_classes, locate_source, require_catalog_classes
from simclr_core.data.tar_index import IMAGE_SUFFIXES, NO_LABEL, index_tar   # image suffixes: folders' too
from simclr_core.validation import ConfigError, require_choice

WINDOW_UNITS = 4
# Images whose sizes `require_one_size` compares before a split without data.image_size is decoded.
SIZE_SAMPLE = 32
# Tar shards kept open at once (a shuffled ImageNet epoch touches ~1,300; the usual limit is 1,024 files).
OPEN_SHARDS = 64


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The permutation of n items for (seed, epoch): the one train() uses for the resident path."""
    return seeding.epoch_permutation(seed, epoch, n).numpy()


class EncodedSplit(ABC):
    """One split's encoded images. Subclasses say how bytes are reached."""

    name: str
    labels: np.ndarray                 # (N,) int64
    num_classes: int
    source: str = ""                   # where the index was built from (Source.describe()), for final.json
    class_names: tuple[str, ...] | None = None    # a label column of names: label i is class_names[i]

    def __len__(self) -> int:
        return len(self.labels)

    @abstractmethod
    def read(self, indices: Sequence[int]) -> list[bytes]:
        """The encoded bytes of images `indices`, in that order."""

    @abstractmethod
    def where(self, index: int) -> str:
        """Where image `index` is, for messages: a file, or a row of a file."""

    def stored_paths(self) -> list[str | None]:
        """The path each image is stored under (its file, its tar member, the image column's `path`), in index
        order; None where the dataset stores none. Lists of image names (eval.finetune_subset_files) match it."""
        return [None] * len(self)

    def epoch_order(self, seed: int, epoch: int, rank: int, world: int, local_batch: int) -> np.ndarray:
        """The images process `rank` of `world` reads in epoch `epoch`, in order, local_batch per step."""
        perm = epoch_permutation(seed, epoch, len(self))
        steps = len(perm) // (local_batch * world)
        return perm[:steps * local_batch * world].reshape(steps, world, local_batch)[:, rank].reshape(-1)


class FileSplit(EncodedSplit):
    """An image folder: one file per image, labels from the class folder names (sorted)."""

    def __init__(self, name: str, paths: Sequence[str], labels: np.ndarray, num_classes: int):
        self.name, self.paths, self.labels, self.num_classes = name, list(paths), labels, num_classes

    def read(self, indices: Sequence[int]) -> list[bytes]:
        out = []
        for i in indices:
            with open(self.paths[i], "rb") as f:
                out.append(f.read())
        return out

    def where(self, index: int) -> str:
        return self.paths[index]

    def stored_paths(self) -> list[str | None]:
        return list(self.paths)


class RowsOf(EncodedSplit):
    """Rows `rows` of another split, in that order: a limited split (data/subset.py's choice of rows, sorted, so
    that a split read a row group at a time is still read in its order)."""

    def __init__(self, split: EncodedSplit, rows: Sequence[int]):
        self.base, self.rows = split, np.asarray(rows, dtype=np.int64)
        self.name, self.num_classes, self.source = split.name, split.num_classes, split.source
        self.labels, self.class_names = split.labels[self.rows], split.class_names

    def read(self, indices: Sequence[int]) -> list[bytes]:
        return self.base.read(self.rows[np.asarray(indices, dtype=np.int64)].tolist())

    def where(self, index: int) -> str:
        return self.base.where(int(self.rows[index]))

    def stored_paths(self) -> list[str | None]:
        paths = self.base.stored_paths()
        return [paths[row] for row in self.rows.tolist()]


class _LockedReads(EncodedSplit):
    """A split whose reads share state (open files, cached row groups): one read at a time, since a training
    stream and an evaluation may read at once."""
    _lock: threading.Lock

    def read(self, indices: Sequence[int]) -> list[bytes]:
        with self._lock:
            return self._read(indices)

    @abstractmethod
    def _read(self, indices: Sequence[int]) -> list[bytes]:
        ...


class TarSplit(_LockedReads):
    """WebDataset tar shards: sample `key` is the member key.jpg (or .jpeg/.png/.webp) with its label in
    key.cls; read by seeking to each member's bytes (the index holds shard, offset and size)."""

    def __init__(self, name: str, files: Sequence[str], members: list[str], shard: np.ndarray,
                 offset: np.ndarray, size: np.ndarray, labels: np.ndarray, num_classes: int):
        self.name, self.files, self.members = name, list(files), members
        self.shard, self.offset, self.size = shard, offset, size
        self.labels, self.num_classes = labels, num_classes
        self._handles: OrderedDict[int, object] = OrderedDict()     # the OPEN_SHARDS most recently read
        self._lock = threading.Lock()

    def _read(self, indices: Sequence[int]) -> list[bytes]:
        out = []
        for i in map(int, indices):
            shard = int(self.shard[i])
            handle = self._handles.get(shard)
            if handle is None:
                handle = self._handles[shard] = open(self.files[shard], "rb")
                while len(self._handles) > OPEN_SHARDS:             # a shuffled epoch touches every shard
                    self._handles.popitem(last=False)[1].close()
            self._handles.move_to_end(shard)
            handle.seek(int(self.offset[i]))
            out.append(handle.read(int(self.size[i])))
        return out

    def where(self, index: int) -> str:
        return f"{self.members[index]} in {self.files[int(self.shard[index])]}"

    def stored_paths(self) -> list[str | None]:
        return list(self.members)


class ArrowSplit(EncodedSplit):
    """Arrow files or a saved dataset, memory-mapped by `datasets`: any row is cheap to reach."""

    def __init__(self, name: str, dataset, column: str, labels: np.ndarray, num_classes: int, describe: str,
                 path_base: Path | None = None):
        self.name, self.labels, self.num_classes = name, labels, num_classes
        self._rows = dataset.select_columns([column]).with_format("arrow")
        self._column, self._describe, self._path_base = column, describe, path_base

    def read(self, indices: Sequence[int]) -> list[bytes]:
        table = self._rows[list(map(int, indices))]
        pairs = below(encoded_pairs(table.column(self._column).combine_chunks()), self._path_base)
        return [b if b is not None else _stored_file(p) for b, p in pairs]

    def where(self, index: int) -> str:
        return f"row {index} of {self._describe}"

    def stored_paths(self) -> list[str | None]:
        return stored_paths(self._rows.data.column(self._column))   # memory-mapped: only the path field is read


def _stored_file(path: str | None) -> bytes:
    """The bytes of the file a row without image bytes names."""
    if not path:
        raise ValueError("the row has neither image bytes nor a path")
    return Path(path).read_bytes()


@dataclass(frozen=True)
class _Unit:
    file: int
    row_group: int
    first: int          # index of its first image in the split
    rows: int


class ParquetSplit(_LockedReads):
    """Parquet shards read a row group at a time (see the module's docstring for the epoch order)."""

    def __init__(self, name: str, files: Sequence[str], column: str, labels: np.ndarray, num_classes: int,
                 units: list[_Unit]):
        self.name, self.files, self.column = name, list(files), column
        self.labels, self.num_classes, self.units = labels, num_classes, units
        self._starts = np.array([u.first for u in units], dtype=np.int64)
        self._cache: OrderedDict[int, list] = OrderedDict()
        self._lock = threading.Lock()

    def _unit_of(self, index: int) -> int:
        return int(np.searchsorted(self._starts, index, side="right") - 1)

    def _unit_rows(self, unit: int) -> list:
        """The (bytes, path) pairs of a row group, keeping the WINDOW_UNITS most recently used."""
        if unit in self._cache:
            self._cache.move_to_end(unit)
            return self._cache[unit]
        import pyarrow.parquet as pq

        u = self.units[unit]
        table = pq.ParquetFile(self.files[u.file]).read_row_group(u.row_group, columns=[self.column])
        rows = encoded_pairs(table.column(self.column).combine_chunks())
        self._cache[unit] = rows
        while len(self._cache) > WINDOW_UNITS:
            self._cache.popitem(last=False)
        return rows

    def _read(self, indices: Sequence[int]) -> list[bytes]:
        out = []
        for i in map(int, indices):
            unit = self._unit_of(i)
            data, path = self._unit_rows(unit)[i - self.units[unit].first]
            if data is None:      # a row may hold only a path, relative to its shard's folder (as `datasets` writes)
                data = _stored_file(path and str(Path(self.files[self.units[unit].file]).parent / path))
            out.append(data)
        return out

    def stored_paths(self) -> list[str | None]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        paths: list[str | None] = []
        for file in self.files:
            handle = pq.ParquetFile(file)
            if not pa.types.is_struct(handle.schema_arrow.field(self.column).type):    # plain bytes: no paths
                paths.extend([None] * handle.metadata.num_rows)
                continue
            table = handle.read(columns=[f"{self.column}.path"])    # one leaf of the image struct
            paths.extend(stored_paths(table.column(self.column)))
        return paths

    def where(self, index: int) -> str:
        u = self.units[self._unit_of(index)]
        return f"row {index - u.first + _file_offset(self.units, u)} of {self.files[u.file]}"

    def epoch_order(self, seed: int, epoch: int, rank: int, world: int, local_batch: int) -> np.ndarray:
        # Row groups larger than a 64th of a process's share are cut into pieces of that size, so that one
        # large group (CIFAR-10's parquet is a single one) still feeds every process. Each piece goes to the
        # process holding the fewest images so far: shares differ by at most one piece, and the few images a
        # process lacks for its last steps are taken again from the start of its own order.
        piece = max(local_batch, len(self) // (64 * world))
        pieces = [(u.first + start, min(piece, u.rows - start))
                  for u in self.units for start in range(0, u.rows, piece)]
        held, mine = np.zeros(world, dtype=np.int64), []
        for p in epoch_permutation(seed, epoch, len(pieces)):
            owner = int(np.argmin(held))
            held[owner] += pieces[p][1]
            if owner == rank:
                mine.append(pieces[p])
        rng = np.random.default_rng([seed, epoch, rank, 0x0DE2])
        order = []
        for start in range(0, len(mine), WINDOW_UNITS):
            window = np.concatenate([np.arange(first, first + rows)
                                     for first, rows in mine[start:start + WINDOW_UNITS]])
            order.append(window[rng.permutation(len(window))])
        order = np.concatenate(order) if order else np.zeros(0, dtype=np.int64)
        need = (len(self) // (local_batch * world)) * local_batch
        if 0 < len(order) < need:
            order = np.resize(order, need)
        return order[:need]


def _file_offset(units: list[_Unit], unit: _Unit) -> int:
    """Index of the unit's first row within its file."""
    return unit.first - next(u.first for u in units if u.file == unit.file)


# ---- opening a split ------------------------------------------------------------------------------------
def open_encoded(cfg: DataConfig, split: str, source: Source | None = None) -> EncodedSplit:
    """The index of `split` of cfg.dataset (at `source`, where the caller located it already), or a ConfigError
    naming what is missing (no images, no labels)."""
    spec = dataset_spec(cfg.dataset, cfg.label_column)
    require_choice("split", split, SPLITS)
    source = source or locate_source(spec, cfg.data_dir, split)
    if spec.label_column is not None and (source.kind == "imagefolder" or source.location == "webdataset"):
        raise ConfigError(f"data.label_column={spec.label_column!r} names a column of parquet or arrow files, and "
                          f"{source.describe()} has none: its labels are its class folders or .cls members; drop "
                          "data.label_column")
    if source.kind == "imagefolder":
        encoded = open_folder(spec.name, source)
    elif source.kind == "files" and source.location == "parquet":
        encoded = _open_parquet(spec, cfg.data_dir, source)
    elif source.kind == "files" and source.location == "webdataset":
        encoded = _open_tar(spec.name, source, spec.num_classes)
    else:
        encoded = _open_arrow(spec, cfg.data_dir, source)
    if len(encoded) == 0:
        raise ConfigError(f"{source.describe()} holds no images for split {split!r}")
    require_catalog_classes(spec, encoded.num_classes, encoded.labels, encoded.class_names,
                            source.describe())
    encoded.source = source.describe()
    return encoded


def require_one_size(split: EncodedSplit, sample: int = SIZE_SAMPLE) -> tuple[str, tuple[int, int]] | None:
    """ConfigError naming two images of `split` that differ in size, among `sample` of them spread over the split
    (the first ones of parquet files, which are read a row group at a time); only their headers are read. The
    resident path decodes a split without data.image_size at its first image's size (decode.py). Returns the first
    readable image's name and (width, height), None where none of them is readable."""
    spread = np.unique(np.linspace(0, len(split) - 1, min(sample, len(split))).round().astype(np.int64))
    indices = list(range(len(spread))) if isinstance(split, ParquetSplit) else spread.tolist()
    first = None
    for index, data in zip(indices, split.read(indices)):
        try:
            with Image.open(io.BytesIO(data)) as image:
                size = image.size
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
            continue                         # decoding names an unreadable image
        if first is None:
            first = (split.where(index), size)
        elif size != first[1]:
            raise mixed_sizes_error(*first, split.where(index), size)
    return first


def open_folder(name: str, source: Source) -> FileSplit:
    """The index of an image folder's split (`source`): its image files, class folder by class folder, each labelled
    by its class folder's place among the class folders of all splits (folder_classes), at any depth below it.
    Listed once, then kept in the process and on disk while none of its folders changes (folder_index.py). A folder
    with no class folders in any split holds images without labels, directly in its split folders (0 classes);
    images directly in a split folder beside class folders belong to no class: left out, with a warning."""
    root = Path(source.location)
    split_dir = next(root / n for n in (source.split, "val", "validation", "test", "train") if (root / n).is_dir())
    (paths, labels, num_classes), left_out = folder_listing(name, root, split_dir)
    loose, loose_left_out = _loose_images(split_dir)
    if num_classes == 0 and loose:
        if loose_left_out is not None:
            warnings.warn(f"in {split_dir}, {loose_left_out.describe()}", stacklevel=2)
        return FileSplit(name, loose, np.zeros(len(loose), dtype=np.int64), 0)
    if left_out is not None:
        warnings.warn(f"in the class folders of {split_dir}, {left_out.describe()}", stacklevel=2)
    warn_of_look_alike_names(folder_classes(root, name), f"the class folders of {root}")
    if loose:
        warnings.warn(f"{len(loose)} images lie directly in {split_dir} (e.g. {loose[0]}), in no class folder: they "
                      "are left out; move them into their class's folder", stacklevel=2)
    if not paths:
        raise ConfigError(f"{split_dir} holds no images ({', '.join(IMAGE_SUFFIXES)}) in class folders; expected "
                          f"{split_dir}/<class>/<image>, e.g. {split_dir}/cat/0001.jpg (images without labels lie "
                          f"directly in {split_dir}, in a folder with no class folders)")
    return FileSplit(name, paths, labels.copy(), num_classes)          # a copy: the memo's stays as listed


def _loose_images(split_dir: Path) -> tuple[list[str], LeftOut | None]:
    """(the image files directly in a split's folder (not in a class folder), sorted; the other files there)."""
    with os.scandir(split_dir) as entries:
        files = sorted(e.path for e in entries if e.is_file())
    return [f for f in files if not_an_image(os.path.basename(f)) is None], left_out_of(files)


def _check_labels(split: EncodedSplit, num_classes: int | None, column: str = "label",
                  classes: tuple[str, ...] | None = None) -> EncodedSplit:
    """Refuse labels that are no whole numbers (of `column`) or lie outside [0, num_classes), naming the image
    (split.where); set split.num_classes. A column of names (the dataset's `classes`) becomes their ids."""
    if classes is not None:
        split.labels = class_ids(split.labels, classes, column, split.where)
        split.class_names, num_classes = classes, len(classes)
    labels = split.labels = integer_labels(split.labels, column, split.where)
    if labels.size and labels.min() < 0:
        row = int(np.argmin(labels))
        raise ConfigError(f"{split.where(row)} has label {labels[row]}: an unlabelled split; use a labelled one")
    if num_classes is not None and labels.size and labels.max() >= num_classes:
        row = int(np.argmax(labels))
        raise ConfigError(f"{split.where(row)} has label {labels[row]}, outside the {num_classes} classes of the "
                          f"dataset; valid labels lie in [0, {num_classes - 1}]: fix or remove it")
    if num_classes is None and labels.size:
        num_classes = int(labels.max()) + 1
        warn_of_sparse_ids(labels, split.where)
    split.num_classes = int(num_classes or 0)
    return split


def _declared_classes(schema, column: str) -> int | None:
    """num_classes of a `datasets` ClassLabel column, from the features that `datasets` stores in the schema."""
    import json

    meta = (schema.metadata or {}).get(b"huggingface")
    if not meta:
        return None
    feature = json.loads(meta).get("info", {}).get("features", {}).get(column, {})
    names = feature.get("names")
    return len(names) if feature.get("_type") == "ClassLabel" and names else None


def _open_parquet(spec: DatasetSpec, data_dir: str | None, source: Source) -> ParquetSplit:
    """The split's index; a split whose shards have no label column is unlabelled (num_classes 0, labels 0)."""
    import pyarrow.parquet as pq

    units, labels, column, label, num_classes, unlabelled = [], [], None, None, None, []
    column_from = None
    for f, path in enumerate(source.files):
        handle = pq.ParquetFile(path)
        if not handle.metadata.num_rows:             # a shard without rows adds nothing (pandas types its columns null)
            continue
        schema = handle.schema_arrow
        column, column_from = _same_image_column(image_column(schema, path), path, column, column_from)
        found = find_label_column(schema.names, path, spec.label_column)
        if found is None:
            unlabelled.append(path)
        else:
            label = found
            num_classes = num_classes or _declared_classes(schema, label)
            labels.append(handle.read(columns=[label]).column(label).to_numpy())
        first = sum(u.rows for u in units)
        for g in range(handle.metadata.num_row_groups):
            rows = handle.metadata.row_group(g).num_rows
            units.append(_Unit(f, g, first, rows))
            first += rows
    if column is None:
        raise ConfigError(f"{source.describe()} holds no images for split {source.split!r}: its parquet files have "
                          "no rows")
    if label is None:
        return ParquetSplit(spec.name, source.files, column, np.zeros(sum(u.rows for u in units), np.int64), 0, units)
    if unlabelled:                                   # every shard of a labelled split has labels
        label_column(pq.read_schema(unlabelled[0]).names, unlabelled[0])          # raises, naming the shard
    raw = np.concatenate(labels)
    split = ParquetSplit(spec.name, source.files, column, raw, 0, units)
    return _check_labels(split, num_classes or spec.num_classes, label, dataset_classes(spec, data_dir, source, raw))


def _same_image_column(column: str, path: str, first: str | None, first_path: str | None) -> tuple[str, str]:
    """(the split's image column, the shard it was first read from); ConfigError where shard `path` keeps its images
    in another column than the shards before it (the rows of one would otherwise be unreadable, one by one)."""
    if first is not None and column != first:
        raise ConfigError(f"{path} keeps its images in column {column!r}, {first_path} in {first!r}: the shards of "
                          "a split must share their image column; rename one of them")
    return column, first_path or path


def _open_tar(name: str, source: Source, catalog_classes: int | None) -> TarSplit:
    """The shards' index from the cache, else built by reading every member's header (data/tar_index.py) and
    cached: the key covers each shard's path, size and mtime. Shards without any .cls member hold images without
    labels (num_classes 0, labels 0); a split where only some samples lack one is refused, naming one."""
    # "-2": indexes since samples of several images are their first one and list the others (left_out); "-3": hidden
    # members left out
    cached = CachedIndex.for_key(name, source.split, "tar-index-3", source.fingerprint())
    index = cached.read()
    if index is None:
        with cached.lock():
            index = cached.read()
            if index is None:
                index = index_tar(source.files)
                cached.write(index)
    members = [m.decode("utf-8", "surrogateescape") for m in index["members"].tolist()]
    left_out = index["left_out"]
    if left_out.size:
        first = left_out[0].decode("utf-8", "surrogateescape")
        warnings.warn(f"{left_out.size} members or samples of {source.describe()} are not read (e.g. {first}): a "
                      f"sample is one image, its first image member ({', '.join(IMAGE_SUFFIXES)}); hidden members (a leading "
                      "dot) are none", stacklevel=2)
    labels = index["labels"]
    split = TarSplit(name, source.files, members, index["shard"], index["offset"], index["size"], labels, 0)
    missing = labels == NO_LABEL
    if missing.size and missing.all():                  # shards of images without labels (num_classes 0)
        split.labels = np.zeros_like(labels)
        return split
    if missing.any():
        row = int(np.argmax(missing))
        key = members[row].rpartition(".")[0]
        raise ConfigError(f"{split.where(row)}: sample {key!r} has an image but no {key}.cls label, while "
                          f"{int((~missing).sum()):,} other samples of the split have one. Give each sample its class "
                          f"index (WebDataset layout: key.jpg beside key.cls), or give none of them a .cls (images "
                          "without labels, pretrained on)")
    return _check_labels(split, catalog_classes)


def _open_arrow(spec: DatasetSpec, data_dir: str | None, source: Source) -> ArrowSplit:
    dataset = source.load()
    schema = dataset.data.schema
    column = image_column(schema, source.describe())
    label = find_label_column(dataset.column_names, source.describe(), spec.label_column)
    if label is None:                                  # a split without labels (num_classes 0)
        return ArrowSplit(spec.name, dataset, column, np.zeros(len(dataset), dtype=np.int64), 0, source.describe(),
                          source.path_base())
    feature = dataset.features[label]
    raw = dataset.select_columns([label]).with_format("arrow")[:].column(label).to_numpy()
    split = ArrowSplit(spec.name, dataset, column, raw, 0, source.describe(), source.path_base())
    return _check_labels(split, getattr(feature, "num_classes", None) or spec.num_classes, label,
                         dataset_classes(spec, data_dir, source, raw))


__all__ = ["EncodedSplit", "FileSplit", "ArrowSplit", "ParquetSplit", "TarSplit", "open_encoded", "epoch_permutation",
           "WINDOW_UNITS"]
