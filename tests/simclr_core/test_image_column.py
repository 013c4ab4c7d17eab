"""Parquet written by pandas: images as a plain column of encoded bytes, read alike on both paths."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from image_rows import png, random_arrays
from simclr_core.config import DataConfig
from simclr_core.data.encoded import open_encoded
from simclr_core.data.feed import open_feed
from simclr_core.data.image_column import image_column
from simclr_core.data.image_paths import image_paths
from simclr_core.validation import ConfigError


pytestmark = pytest.mark.usefixtures("isolated_data_caches")


def _write_pandas(root: Path, column: str = "jpg", **extra) -> dict[str, list[np.ndarray]]:
    """train/test parquet files from pandas DataFrames: `column` of PNG bytes, a label column of class names."""
    root.mkdir(parents=True, exist_ok=True)
    arrays = {"train": random_arrays(8, 1), "test": random_arrays(4, 2)}
    for split, images in arrays.items():
        frame = pd.DataFrame({column: [png(a) for a in images],
                              "label": ["cat", "dog"] * (len(images) // 2), **{k: [v] * len(images)
                                                                              for k, v in extra.items()}})
        frame.to_parquet(root / f"{split}.parquet")
    return arrays


def test_a_binary_image_column_is_read_alike_on_both_paths(tmp_path):
    """A pandas DataFrame's column of image bytes was refused on both paths ("has no image column"): they knew only
    the struct of bytes and path that `datasets` writes."""
    arrays = _write_pandas(tmp_path / "data")
    cfg = DataConfig(dataset="parquet", data_dir=str(tmp_path / "data"), train_limit=None, test_limit=None,
                     image_size=16)
    resident = open_feed(replace(cfg, loader="resident"), need_test=True)
    expected = torch.from_numpy(np.stack(arrays["train"])).permute(0, 3, 1, 2)
    assert torch.equal(resident.train_eval, expected)                       # lossless PNG, already 16 px
    assert resident.train_labels.tolist() == [0, 1] * 4 and resident.class_names == ("cat", "dog")
    split = open_encoded(cfg, "train")
    assert split.read([3]) == [png(arrays["train"][3])] and split.stored_paths() == [None] * 8
    streamed = open_feed(replace(cfg, loader="stream"), need_test=True)
    assert streamed.train_labels.tolist() == resident.train_labels.tolist()
    assert image_paths(cfg, "train").paths == (None,) * 8


def test_among_several_byte_columns_the_one_named_as_images_is_taken(tmp_path):
    _write_pandas(tmp_path / "data", column="image", thumbnail=b"\x00\x01")
    split = open_encoded(DataConfig(dataset="parquet", data_dir=str(tmp_path / "data")), "train")
    assert split.column == "image"


def test_several_byte_columns_none_named_as_images_is_one_error_naming_them(tmp_path):
    schema = pa.schema([("front", pa.binary()), ("back", pa.binary()), ("label", pa.int64())])
    with pytest.raises(ConfigError, match=r"^x.parquet has several columns of bytes \(front, back\) and none is named "
                                          r"as an image column \(image, img, jpg, jpeg, png, webp\): rename the one "
                                          r"holding the images$"):
        image_column(schema, "x.parquet")
    with pytest.raises(ConfigError, match=r"^x.parquet has no image column .* columns: label$"):
        image_column(pa.schema([("label", pa.int64())]), "x.parquet")


def test_pandas_categorical_labels_are_class_names(tmp_path):
    """pandas writes a Categorical as a dictionary column (int8 codes into its categories): names, as a string
    column's, numbered over both splits (not by the codes, which number each file's own categories)."""
    root = tmp_path / "data"
    root.mkdir()
    for split, labels in (("train", ["dog", "cat", "dog", "cat"]), ("test", ["eel", "dog"])):
        pd.DataFrame({"image": [png(a) for a in random_arrays(len(labels), 3)],
                      "label": pd.Categorical(labels)}).to_parquet(root / f"{split}.parquet")
    cfg = DataConfig(dataset="parquet", data_dir=str(root), train_limit=None, test_limit=None, image_size=16)
    for loader in ("resident", "stream"):
        with pytest.warns(UserWarning, match="no training image has \\('eel'\\)"):
            feed = open_feed(replace(cfg, loader=loader), need_test=True)
        assert feed.class_names == ("cat", "dog", "eel")
        assert feed.train_labels.tolist() == [1, 0, 1, 0] and feed.test_labels.tolist() == [2, 1]
