"""The labels of a parquet or arrow split: which column holds them, and class names in it.

The label column is the one data.label_column names, else the first of LABEL_COLUMNS; a split with none has no
labels (it can be pretrained on, not classified). A split whose labels are names ("cat", "dog") instead of class
ids gets its ids from the sorted names of all of the dataset's splits, so that a class has one id in every split
whichever classes a split lacks, as an image folder's class folders do (locate.folder_classes):
`dataset_classes(spec, data_dir, source)` is None for a split labelled by ids (a `datasets` ClassLabel stores
ids), else the dataset's class names; `class_ids` maps a split's names to those ids. Only label columns and
schemas are read here, never an image.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from simclr_core.data.catalog import SPLITS, DatasetSpec
from simclr_core.data.locate import DataNotFoundError, Source, class_folder_hint, locate_source
from simclr_core.validation import ConfigError

LABEL_COLUMNS = ("label", "fine_label", "labels", "cls")       # "cls": WebDataset shards


def find_label_column(names: Sequence[str], where: str, named: str | None = None) -> str | None:
    """The label column among the column `names`: `named` (data.label_column, a ConfigError naming `where` and the
    columns where it is missing), else the first of LABEL_COLUMNS; None for a split without labels."""
    if named is None:
        return next((name for name in LABEL_COLUMNS if name in names), None)
    if named in names:
        return named
    raise ConfigError(f"{where} has no column {named!r} (data.label_column); its columns: {', '.join(names)}")


def label_column(names: Sequence[str], where: str, named: str | None = None) -> str:
    """find_label_column's column, or a ConfigError naming `where` and the columns where there is none."""
    found = find_label_column(names, where, named)
    if found is not None:
        return found
    raise ConfigError(f"{where} has none of the label columns {', '.join(LABEL_COLUMNS)} "
                      f"(columns: {', '.join(names)}); name another with data.label_column=NAME")


def how_labels_are_given(source: Source | None) -> tuple[str, str]:
    """(what a split of `source`'s kind without labels lacks, how to give it labels): class folders for an image
    folder, .cls members for tar shards, a label column for parquet and arrow (and where the source is unknown)."""
    if source is not None and source.kind == "imagefolder":
        return "no class folders", ("Put each class's images in a folder of its own (<split>/<class>/<image>)"
                                    + class_folder_hint(source.dataset))
    if source is not None and source.location == "webdataset":
        return "no .cls members", "Give each sample its class index in a .cls member (key.cls beside key.jpg)"
    return (f"none of the label columns {', '.join(LABEL_COLUMNS)}",
            "Give them a label column (or name the one they have: data.label_column=NAME)")


def dataset_classes(spec: DatasetSpec, data_dir: str | None, source: Source,
                    values: np.ndarray | None = None) -> tuple[str, ...] | None:
    """The sorted class names of all splits of the dataset `source` is a split of, where its label column holds
    names; None where it holds ids (told by the schema alone, or by `values`: the split's label column where the
    caller has read it already). The other splits are found as `source` was (locate_source) and of the same kind;
    a split the dataset lacks adds no names, and one labelled by ids is a ConfigError (its ids would number other
    classes)."""
    if not (_labels_are_names(source, spec) if values is None else _are_names(values)):
        return None
    names = {value for value in (_label_values(source, spec) if values is None else values)
             if isinstance(value, str)}
    for split in SPLITS:
        try:
            sibling = locate_source(spec, data_dir, split)
        except DataNotFoundError:
            continue
        if sibling == source or sibling.kind != source.kind:
            continue
        named = _labels_are_names(sibling, spec)
        if named is False:
            raise ConfigError(f"{source.describe()} labels its images by class names and {sibling.describe()} by "
                              "class ids: label every split alike (names, or ids as a `datasets` ClassLabel stores "
                              "them)")
        if named:
            names.update(value for value in _label_values(sibling, spec) if isinstance(value, str))
    classes = tuple(sorted(names))
    warn_of_look_alike_names(classes, f"the label column of {source.describe()}")
    return classes


def warn_of_look_alike_names(classes: Sequence[str], where: str) -> None:
    """One warning where class names differ only in case or surrounding spaces ("cat", "Cat", " cat"): each is a
    class of its own, which is seldom what was meant."""
    alike: dict[str, list[str]] = {}
    for name in classes:
        alike.setdefault(name.strip().casefold(), []).append(name)
    groups = [group for group in alike.values() if len(group) > 1]
    if groups:
        shown = "; ".join(", ".join(repr(name) for name in group) for group in groups[:3])
        more = f" (and {len(groups) - 3} more such groups)" if len(groups) > 3 else ""
        warnings.warn(f"class names of {where} differ only in case or surrounding spaces: {shown}{more}; each is a "
                      "class of its own: rename them alike where they are one class", stacklevel=3)


def classes_key(classes: tuple[str, ...] | None) -> str:
    """A short text that tells class lists apart, for cache keys ("" for labels that are ids): a split's cached
    ids stay right only while the dataset's class names are those it was decoded with."""
    if classes is None:
        return ""
    return "classes:" + hashlib.sha256(json.dumps(classes).encode()).hexdigest()[:16]


def class_ids(values: np.ndarray, classes: Sequence[str], column: str, where: Callable[[int], str]) -> np.ndarray:
    """`values` (class names) as int64 ids into `classes`, or a ConfigError naming the first row whose label is no
    class name (a missing value)."""
    index = {name: i for i, name in enumerate(classes)}
    ids = np.fromiter((index.get(v, -1) if isinstance(v, str) else -1 for v in values), np.int64, len(values))
    if (ids < 0).any():
        row = int(np.argmax(ids < 0))
        shown = ", ".join(repr(name) for name in classes[:5]) + (", ..." if len(classes) > 5 else "")
        raise ConfigError(f"{where(row)} has {column} {values[row]!r} where the column's other rows hold class "
                          f"names ({shown}): give every row its class name")
    return ids


def _are_names(values: np.ndarray) -> bool:
    return values.dtype.kind in "OU" and any(isinstance(value, str) for value in values)


def _labels_are_names(source: Source, spec: DatasetSpec) -> bool | None:
    """Whether the split's label column is of a string type, from its schema (a Hub split: its features); None
    where it has none (the caller names the columns it lacks)."""
    import pyarrow as pa

    schema = _schema(source)
    column = None if schema is None else find_label_column(schema.names, source.describe(), spec.label_column)
    if column is None:
        return None
    kind = schema.field(column).type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _schema(source: Source):
    """The Arrow schema of a local parquet or arrow split, or of a Hub split as `datasets` loads it; None for the
    kinds whose labels are never names (image folders: class folders; tar shards: .cls files)."""
    import pyarrow.parquet as pq

    if source.kind == "imagefolder" or source.location == "webdataset":
        return None
    if source.kind == "files" and source.location == "parquet":
        return pq.read_schema(source.files[0])
    if source.kind == "hub":
        return source.load().data.schema
    files = _arrow_files(source)
    return _open_arrow(files[0]).schema if files else None


def _label_values(source: Source, spec: DatasetSpec) -> list:
    """The label column of a split, as stored (a list of Python values)."""
    import pyarrow.parquet as pq

    named = spec.label_column
    if source.kind == "files" and source.location == "parquet":
        values = []
        for path in source.files:
            column = label_column(pq.read_schema(path).names, path, named)
            values.extend(pq.read_table(path, columns=[column]).column(column).to_pylist())
        return values
    if source.kind == "hub":
        dataset = source.load()
        column = label_column(dataset.column_names, source.describe(), named)
        return dataset.select_columns([column]).with_format("arrow")[:].column(column).to_pylist()
    values = []
    for path in _arrow_files(source):
        table = _open_arrow(path).read_all()
        values.extend(table.column(label_column(table.schema.names, path, named)).to_pylist())
    return values


def _arrow_files(source: Source) -> list[str]:
    return [path for path in source.files if Path(path).suffix == ".arrow"]


def _open_arrow(path: str):
    """A reader of an Arrow file, memory-mapped: `datasets` writes the stream format, pyarrow's writers either."""
    import pyarrow as pa

    try:
        return pa.ipc.open_stream(pa.memory_map(path))
    except pa.ArrowInvalid:
        return pa.ipc.open_file(pa.memory_map(path))
