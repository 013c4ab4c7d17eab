"""Which source row and stored path each image of a decoded split has: `image_paths(cfg, split)`.

`load_images` keeps pixels and labels only. A list of images named by the dataset's own file names (the paper's
1% / 10% ImageNet label subsets, eval.finetune_subset_files) needs to know, for every image it returned, the row of
the split it was decoded from and the path the dataset stores with it: the image column's `path` field (a file
name or a class/file path in parquet files, the file's full path in an image folder). Rows are the order of the
split's files; with data.train_limit / data.test_limit only the chosen rows are held, in the order load_images
holds them. Nothing is decoded; only the label column and the paths are read. Images that load_images left out as
unreadable (known once the split is decoded: its cache entry says which) are not held: they are `left_out`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simclr_core.config import DataConfig
from simclr_core.data.catalog import SPLITS, dataset_spec
from simclr_core.data.image_column import stored_paths
from simclr_core.data.images import _folder_index, _image_column, _limited, split_labels, unreadable_rows
from simclr_core.data.locate import locate_source
from simclr_core.validation import require_choice


@dataclass(frozen=True)
class ImagePaths:
    """Image i of the decoded split is row `rows[i]` of the split's `total` rows, stored as `paths[i]` (None where
    the dataset stores no path)."""
    rows: np.ndarray                 # (N,) int64, increasing
    paths: tuple[str | None, ...]
    total: int
    where: str                       # the split's source, for messages
    # (row, stored path, "where (why)") of each chosen image that could not be decoded, left out of the above
    left_out: tuple[tuple[int, str | None, str], ...] = ()

    def __len__(self) -> int:
        return len(self.rows)


def image_paths(cfg: DataConfig, split: str) -> ImagePaths:
    """The source rows and stored paths of the images `load_images(cfg, split)` returns, in its order."""
    require_choice("split", split, SPLITS)
    source = locate_source(dataset_spec(cfg.dataset, cfg.label_column), cfg.data_dir, split)
    limit = cfg.train_limit if split == "train" else cfg.test_limit
    if source.kind == "imagefolder":            # load_images decodes a folder from its file listing
        index = _folder_index(source)
        rows = np.arange(len(index)) if limit is None else _limited(index.labels, limit, f"data.{split}_limit", source)
        paths, total = [index.paths[row] for row in rows], len(index)
    else:
        dataset = source.load()
        labels = split_labels(dataset, dataset_spec(cfg.dataset, cfg.label_column), cfg.data_dir, source)[0]
        rows = np.arange(len(labels)) if limit is None else _limited(labels, limit, f"data.{split}_limit", source)
        column = _image_column(dataset, source)
        paths = []
        table = dataset.select(rows).select_columns([column]).with_format("arrow")
        for batch in table.iter(batch_size=4096):
            paths.extend(stored_paths(batch.column(column)))
        total = len(labels)
    rows = np.asarray(rows, dtype=np.int64)
    unreadable = {position: text for position, _, text in unreadable_rows(cfg, split) or ()}
    held = [i for i in range(len(rows)) if i not in unreadable]
    return ImagePaths(rows[held], tuple(paths[i] for i in held), total, source.describe(),
                      tuple((int(rows[i]), paths[i], text) for i, text in sorted(unreadable.items())))
