"""`load_images(cfg, split)`: one split of a named dataset as a single uint8 tensor, decoded once and cached.

"Most of our study for unsupervised pretraining [...] is done using the ImageNet ILSVRC-2012 dataset [...].
Some additional pretraining experiments on CIFAR-10 [...] can be found in Appendix B.9." (Sec. 2.3);
`DATASETS` lists the names this harness can load.
"""
from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass

from typing import Callable, Iterator

import numpy as np
import torch

from simclr_core.config import DataConfig
from simclr_core.data.bad_images import FIRST_NAMED, none_readable_error, too_many, too_many_error
from simclr_core.data.cache import CachedSplit
from simclr_core.data.catalog import SPLITS, DatasetSpec, dataset_spec
from simclr_core.data.class_names import class_ids, classes_key, dataset_classes, find_label_column
from simclr_core.data.decode import decode_to_array, iter_encoded
from simclr_core.data.folder_index import FORMAT as FOLDER_INDEX_FORMAT
from simclr_core.data.image_column import below, image_column
from simclr_core.data.locate import Source, locate_source, require_catalog_classes
from simclr_core.data.subset import SUBSET_SEED, balanced_subset
from simclr_core.validation import ConfigError, require_choice

log = logging.getLogger(__name__)


@dataclass
class ImageSet:
    """One split in memory: images (N, 3, H, W) uint8, labels (N,) int64, and the channel statistics (fractions
    of 255) used to normalise it."""
    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    name: str
    source: str = ""        # where it was decoded from (Source.describe()), for final.json
    class_names: tuple[str, ...] | None = None    # a label column of names: label i is class_names[i]
    unreadable: tuple[str, ...] = ()    # "where (why)" of each image left out as unreadable (bad_images.py)

    def __len__(self) -> int:
        return self.labels.shape[0]


def load_images(cfg: DataConfig, split: str) -> ImageSet:
    """Split "train" or "test" of ``cfg.dataset``, limited to cfg.train_limit / cfg.test_limit images (a fixed,
    class-balanced choice). The first call decodes and caches; later calls read the cache, not the source. Images
    that cannot be decoded are left out with their labels (decode.py; `ImageSet.unreadable` names them)."""
    spec = dataset_spec(cfg.dataset, cfg.label_column)
    require_choice("split", split, SPLITS)
    limit_key = f"data.{split}_limit"
    limit = cfg.train_limit if split == "train" else cfg.test_limit
    source = locate_source(spec, cfg.data_dir, split)
    if source.location == "webdataset":
        raise ConfigError(f"{source.describe()}: WebDataset tar shards are read by the streamed path; set "
                          "data.loader=stream (or leave data.loader=auto with data.dataset=parquet or imagenet)")
    size = cfg.image_size or spec.native_size  # None: the first image's side (folders, parquet)
    full, wanted = _cache_entries(spec, cfg, split, source)
    decoded_now = False
    if not wanted.exists():
        with wanted.lock():
            if not wanted.exists() and not (limit is not None and full.exists()):
                damage = wanted.problem() if wanted.present() else None
                if damage:
                    warnings.warn(f"simclr_core: the decoded cache entry {wanted.stem} is damaged ({damage}), "
                                  "as a power loss or a full disk can leave it: decoding the split again", stacklevel=2)
                _decode_and_cache(spec, source, size, limit, limit_key, wanted, cfg.data_dir)
                decoded_now = True
    if wanted.exists():
        images, labels, meta = wanted.read()
        unreadable = _unreadable_of(meta)
    else:  # the whole split is already decoded: take the subset from it
        images, labels, meta = full.read(mmap=True)
        kept, unreadable = _limited_entry(labels, _unreadable_of(meta), limit, limit_key, source)
        images, labels = np.ascontiguousarray(images[kept]), labels[kept]
    if unreadable and not decoded_now:     # decoding warned of each; a run reading the cache is told once
        warnings.warn(f"{len(unreadable)} of the {len(labels) + len(unreadable)} images of {source.describe()} could "
                      f"not be decoded and are left out, with their labels (the first: {unreadable[0][2]}); final.json "
                      "counts them", stacklevel=2)
    names = meta.get("class_names")
    if not decoded_now:     # an entry decoded before copies were held to the catalog's class count
        require_catalog_classes(spec, meta["num_classes"], labels if limit is None else labels[:0],
                                None if names is None else tuple(names), source.describe())
    return ImageSet(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)), meta["num_classes"],
                    spec.mean, spec.std, spec.name, meta.get("source", source.describe()),
                    None if names is None else tuple(names), tuple(text for _, _, text in unreadable))


def _unreadable_of(meta: dict) -> list[tuple[int, int, str]]:
    """(position among the entry's rows, label, "where (why)") of each image its decoding left out as unreadable;
    none in an entry written before such images were left out (an unreadable image then stopped the decoding)."""
    return [(int(position), int(label), str(text)) for position, label, text in meta.get("unreadable", [])]


def _limited_entry(labels: np.ndarray, unreadable: list[tuple[int, int, str]], limit: int, key: str, source: Source
                   ) -> tuple[np.ndarray, list[tuple[int, int, str]]]:
    """The data.<split>_limit subset of a whole split's cache entry, as decoding that subset alone gives it: the rows
    of the entry to keep, and the subset's unreadable images (positions among the subset's rows). The subset is drawn
    over every row of the split, the unreadable ones included (the entry keeps their labels), so that it does not
    depend on which entry a run finds; it is judged as a split of its own (bad_images.py)."""
    dropped = np.array([position for position, _, _ in unreadable], dtype=np.int64)
    every = np.insert(labels, dropped - np.arange(len(dropped)), [label for _, label, _ in unreadable])
    chosen = _limited(every, limit, key, source)
    lost = np.isin(chosen, dropped)
    in_subset = set(chosen[lost].tolist())
    left_out = [(int(np.searchsorted(chosen, position)), label, text) for position, label, text in unreadable
                if position in in_subset]
    texts = [text for _, _, text in left_out]
    if too_many(len(left_out), len(chosen)):
        raise too_many_error(len(left_out), f"the {len(chosen)} images {key}={limit} keeps of {source.describe()}",
                             texts[:FIRST_NAMED])
    if lost.all():
        raise none_readable_error(len(chosen), texts[0])
    kept = chosen[~lost]
    return kept - np.searchsorted(dropped, kept), left_out


def unreadable_rows(cfg: DataConfig, split: str) -> list[tuple[int, int, str]] | None:
    """What load_images(cfg, split) leaves out as unreadable, read from its decoded cache: (position among the rows
    data.<split>_limit chooses, label, "where (why)"); None where the split is not decoded yet."""
    spec = dataset_spec(cfg.dataset, cfg.label_column)
    source = locate_source(spec, cfg.data_dir, split)
    full, wanted = _cache_entries(spec, cfg, split, source)
    if wanted.exists():
        return _unreadable_of(json.loads(wanted.meta_path.read_text()))
    if not full.exists():
        return None
    limit = cfg.train_limit if split == "train" else cfg.test_limit
    labels = np.load(full.labels_path)
    return _limited_entry(labels, _unreadable_of(json.loads(full.meta_path.read_text())), limit,
                          f"data.{split}_limit", source)[1]


def check_decodable(cfg: DataConfig, split: str, source: Source) -> bool:
    """Before load_images(cfg, split): the ConfigError it would raise when data.<split>_limit does not fit the
    split, found without decoding (the split counted from its decoded cache, its parquet footers or its local
    listing; a Hub split not in the decoded cache is counted when the run downloads it). Returns whether the
    split is in the decoded cache, so that the run reads the cache and never opens `source`."""
    limit = cfg.train_limit if split == "train" else cfg.test_limit
    full, wanted = _cache_entries(dataset_spec(cfg.dataset, cfg.label_column), cfg, split, source)
    if wanted.exists():
        return True
    if limit is not None and (full.exists() or source.kind != "hub"):
        count = count_examples(cfg, split, source)
        if not 2 <= limit <= count:
            raise _limit_error(limit, f"data.{split}_limit", count, source)
    return full.exists()


def count_examples(cfg: DataConfig, split: str, source: Source) -> int | None:
    """The number of examples of `split` without decoding: from its decoded cache, its parquet footers or its
    local listing; None for a Hub split not in the decoded cache (counted when the run downloads it)."""
    full, _ = _cache_entries(dataset_spec(cfg.dataset, cfg.label_column), cfg, split, source)
    if full.exists():       # the images decoded, and those left out as unreadable
        unreadable = _unreadable_of(json.loads(full.meta_path.read_text()))
        return len(np.load(full.labels_path, mmap_mode="r")) + len(unreadable)
    if source.kind == "imagefolder":
        return len(_folder_index(source))
    return None if source.kind == "hub" else source.count_rows()


def count_classes(cfg: DataConfig, split: str, source: Source) -> int | None:
    """The number of classes of `split` as load_images finds it, without decoding: from its decoded cache, or
    from a local split's labels (0 where it has none: images without labels); None for a Hub split not in the
    decoded cache."""
    spec = dataset_spec(cfg.dataset, cfg.label_column)
    for cached in _cache_entries(spec, cfg, split, source):
        if cached.exists():
            meta = json.loads(cached.meta_path.read_text())
            require_catalog_classes(spec, meta["num_classes"], np.zeros(0, dtype=np.int64), meta.get("class_names"),
                                    source.describe())
            return int(meta["num_classes"])
    if source.kind == "hub":
        return None
    if source.kind == "imagefolder":
        return _folder_index(source).num_classes
    return split_labels(source.load(), spec, cfg.data_dir, source)[1]


def _local_classes(spec: DatasetSpec, cfg: DataConfig, source: Source) -> tuple[str, ...] | None:
    """The dataset's class names where a local split's label column holds names (class_names.py); None for labels
    that are ids and for a Hub split, which is read only when the run downloads it."""
    return None if source.kind == "hub" else dataset_classes(spec, cfg.data_dir, source)


def _cache_entries(spec: DatasetSpec, cfg: DataConfig, split: str, source: Source) -> tuple[CachedSplit, CachedSplit]:
    """(the whole split's cache entry, the entry of the images cfg asks for): the same one without a limit. A local
    split labelled by names is keyed by the dataset's class names too, which fix its ids."""
    size = cfg.image_size or spec.native_size
    limit = cfg.train_limit if split == "train" else cfg.test_limit
    fingerprint = source.fingerprint() + classes_key(_local_classes(spec, cfg, source))
    if spec.label_column is not None:                   # other labels than the default column's
        fingerprint += f"label_column:{spec.label_column}"
    if source.kind == "imagefolder":                    # which of its files are images: folder_index.py's rules
        fingerprint += f"folder_index:{FOLDER_INDEX_FORMAT}"
    full = CachedSplit.for_key(spec.name, split, fingerprint, size, None)
    wanted = full if limit is None else CachedSplit.for_key(spec.name, split, fingerprint, size, [limit, SUBSET_SEED])
    return full, wanted


def _folder_index(source: Source):
    """An image folder's index of files and labels (encoded.open_folder: the streamed path's, so that both paths
    label a folder alike); Hugging Face's imagefolder would first build an Arrow table of the folder in its cache."""
    from simclr_core.data.encoded import open_folder      # encoded imports this module

    return open_folder(source.dataset, source)


def _iter_files(index, chosen: np.ndarray, chunk: int = 256) -> Iterator[tuple[bytes | None, str | None]]:
    """(bytes, None) of the index's images `chosen`, read `chunk` files at a time (decode_to_array's input); where
    a chunk cannot be read (a file without read permission, say), (None, path) for each of its files, which
    decode_to_array then opens itself and names the one that fails."""
    for start in range(0, len(chosen), chunk):
        rows = chosen[start:start + chunk].tolist()
        try:
            yield from ((data, None) for data in index.read(rows))
        except OSError:
            yield from ((None, index.paths[row]) for row in rows)


def _decode_and_cache(spec: DatasetSpec, source: Source, image_size: int | None, limit: int | None,
                      limit_key: str, target: CachedSplit, data_dir: str | None) -> None:
    started = time.perf_counter()
    classes = None
    if source.kind == "imagefolder":
        index = _folder_index(source)
        labels, num_classes = index.labels, index.num_classes
        chosen = np.arange(len(labels)) if limit is None else _limited(labels, limit, limit_key, source)
        encoded = _iter_files(index, chosen)

        def where(i: int) -> str:
            return index.where(int(chosen[i]))
    else:
        dataset = source.load()
        image_column = _image_column(dataset, source)
        labels, num_classes, classes = split_labels(dataset, spec, data_dir, source)
        chosen = np.arange(len(labels)) if limit is None else _limited(labels, limit, limit_key, source)
        encoded = below(iter_encoded(dataset, image_column, chosen), source.path_base())

        def where(i: int) -> str:
            return _row_of(source, int(chosen[i]))
    chosen_labels = labels[chosen]

    def decode(allocate: Callable[[tuple[int, ...]], np.ndarray]) -> tuple[np.ndarray, np.ndarray, dict]:
        images, unreadable = decode_to_array(encoded, len(chosen), image_size, spec.resize_margin, allocate, where)
        dropped = [position for position, _ in unreadable]
        # "count": the images stored; "unreadable": those left out, with their labels (so that a subset drawn
        # from this entry is the one decoding it alone gives: _limited_entry)
        meta = {"num_classes": num_classes, "count": len(chosen) - len(dropped), "source": source.describe(),
                "unreadable": [[position, int(chosen_labels[position]), text] for position, text in unreadable]}
        if classes is not None:
            meta["class_names"] = list(classes)
        return images, np.delete(chosen_labels, dropped), meta

    target.write(decode)
    log.info("decoded %d images of %s in %.1f s -> %s", len(chosen), source.describe(),
             time.perf_counter() - started, target.images_path)


def _check_labels(labels: np.ndarray, declared: int | None, spec: DatasetSpec, source: Source,
                  column: str) -> int:
    """The number of classes: the label column's ClassLabel, else the catalogue's, else the largest label + 1.
    ConfigError naming the first bad row when a label is negative or not below a known class count."""
    known = declared if declared is not None else spec.num_classes
    if not labels.size:
        return int(known or 0)
    bad = labels < 0 if known is None else (labels < 0) | (labels >= known)
    if bad.any():
        row = int(np.argmax(bad))
        if known is None:
            valid = "valid labels are >= 0"
        else:
            origin = f"column {column!r} declares" if declared is not None else f"{spec.name} has"
            valid = f"valid labels lie in [0, {known - 1}] ({origin} {known} classes)"
        fix = "an unlabelled example: use a labelled split" if labels[row] < 0 else "fix or remove the row"
        raise ConfigError(f"{_row_of(source, row)} has {column} {labels[row]}; {valid}; {fix}")
    if known is not None:
        return int(known)
    warn_of_sparse_ids(labels, lambda row: _row_of(source, row))
    return int(labels.max()) + 1


def _limited(labels: np.ndarray, limit: int, key: str, source: Source) -> np.ndarray:
    """balanced_subset, with a range error that names the config key (a scale may have set it, not the user)."""
    if not 2 <= limit <= len(labels):
        raise _limit_error(limit, key, len(labels), source)
    return balanced_subset(labels, limit)


def _limit_error(limit: int, key: str, count: int, source: Source) -> ConfigError:
    return ConfigError(f"{key}={limit} does not fit the {count} examples of split {source.split!r} of "
                       f"{source.describe()}; valid values lie in [2, {count}]: override it with {key}=N")


def _row_of(source: Source, row: int) -> str:
    """"DATASET SPLIT: row N of FILE" for row ``row`` of the split, counted within its own file when the split
    spans several parquet files (for error messages only: it reads the files' footers)."""
    if source.kind == "files" and source.location == "parquet" and len(source.files) > 1:
        import pyarrow.parquet as pq

        for path in source.files:
            rows = pq.ParquetFile(path).metadata.num_rows
            if row < rows:
                return f"{source.dataset} {source.split}: row {row} of {path}"
            row -= rows
    return f"{source.dataset} {source.split}: row {row} of {source.describe()}"


def _image_column(dataset, source: Source) -> str:
    """The column of encoded images (image_column.py), found in the Arrow schema as the streamed path finds it."""
    return image_column(dataset.data.schema, source.describe())


def split_labels(dataset, spec: DatasetSpec, data_dir: str | None, source: Source
                 ) -> tuple[np.ndarray, int, tuple[str, ...] | None]:
    """(class ids, number of classes, class names where the label column holds names) of a loaded split; a split
    without a label column is unlabelled: ids 0, 0 classes (it can be pretrained on, not classified)."""
    column = find_label_column(dataset.column_names, source.describe(), spec.label_column)
    if column is None:
        return np.zeros(len(dataset), dtype=np.int64), 0, None
    values = dataset.select_columns([column]).with_format("arrow")[:].column(column).to_numpy()
    classes = dataset_classes(spec, data_dir, source, values)
    labels = _label_ids(values, column, lambda row: _row_of(source, row), classes)
    declared = len(classes) if classes is not None else getattr(dataset.features[column], "num_classes", None)
    count = _check_labels(labels, declared, spec, source, column)
    require_catalog_classes(spec, count, labels, classes, source.describe())
    return labels, count, classes


def _label_ids(values: np.ndarray, column: str, where: Callable[[int], str],
               classes: tuple[str, ...] | None) -> np.ndarray:
    """A label column's class ids: the ids it stores, or its names' places in `classes` (class_names.py)."""
    return integer_labels(values, column, where) if classes is None else class_ids(values, classes, column, where)


def integer_labels(values: np.ndarray, column: str, where: Callable[[int], str]) -> np.ndarray:
    """A label column's `values` as int64 class ids, or a ConfigError naming the first row (`where(row)`) whose label
    is no whole number: a fraction, a missing value, a class name (which class_names.py maps before this)."""
    if values.dtype.kind in "iub":
        return values.astype(np.int64)
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values) | (values != np.round(values))
    else:                                   # strings, or objects (None where a label is missing)
        bad = np.array([not isinstance(v, (int, np.integer)) or isinstance(v, bool) for v in values], dtype=bool)
    if bad.any():
        row = int(np.argmax(bad))
        value = values[row].item() if isinstance(values[row], np.generic) else values[row]
        shown = repr(value) if len(repr(value)) <= 60 else f"{repr(value)[:50]}... ({type(value).__name__})"
        raise ConfigError(f"{where(row)} has {column} {shown}: labels must be whole-number class ids (0, 1, ...) "
                          "or, in every row, class names")
    return values.astype(np.int64)


# Class ids from a column count max + 1 classes; evaluation sizes its outputs by that count (kNN: test images x
# classes), so ids far sparser than this are told.
SPARSE_IDS_RATIO = 10
SPARSE_IDS_MIN_CLASSES = 1000


def warn_of_sparse_ids(labels: np.ndarray, where: Callable[[int], str]) -> None:
    """A warning where `labels` use few of their max + 1 ids (e.g. WordNet offsets as ids); where(row) names a row."""
    distinct, largest = len(np.unique(labels)), int(np.argmax(labels))
    num_classes = int(labels[largest]) + 1
    if num_classes >= SPARSE_IDS_MIN_CLASSES and num_classes > SPARSE_IDS_RATIO * distinct:
        warnings.warn(f"the label column holds {distinct:,} distinct class ids up to {num_classes - 1:,} "
                      f"({where(largest)}), so evaluation scores over {num_classes:,} classes (kNN holds test images "
                      f"x classes of votes); renumber them 0..{distinct - 1} or store class names", stacklevel=3)
