"""A tiny synthetic stand-in for a transfer dataset (Table 8's Food-101, Pets, ..., or CIFAR), in the layout a user
downloads from the Hub: ROOT/<name>/data/<split>-00000-of-00001.parquet with an image column ({"bytes", "path"}) and
a label column, one file per split under the split names the data catalog looks for. Found like the real files, with
$SIMCLR_DATA_DIR=ROOT."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from simclr_core.data.catalog import dataset_spec

# Images per class in each split: unbalanced, so that mean per-class accuracy is not top-1 under another name.
PER_CLASS = {"train": (8, 4, 4), "test": (6, 2, 2)}


def _jpeg(label: int, height: int, width: int, rng: np.random.Generator) -> bytes:
    """A noisy JPEG whose brightest channel is the class, so the classes can be told apart."""
    pixels = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    pixels[..., label % 3] += 180
    encoded = io.BytesIO()
    Image.fromarray(pixels).save(encoded, format="JPEG", quality=90)
    return encoded.getvalue()


def make_transfer_stand_in(root: Path, name: str, seed: int = 0) -> Path:
    """Write the stand-in of transfer dataset `name` under `root` (the folder $SIMCLR_DATA_DIR names): images of
    varied sizes for a photo collection, squares of the native side for a fixed-size set (CIFAR). Returns its
    folder."""
    spec = dataset_spec(name)
    rng = np.random.default_rng(seed)
    folder = root / name / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for split, counts in PER_CLASS.items():
        labels = [label for label, count in enumerate(counts) for _ in range(count)]
        sizes = [(spec.native_size, spec.native_size) if spec.native_size else tuple(rng.integers(24, 72, 2))
                 for _ in labels]
        images = [{"bytes": _jpeg(label, int(h), int(w), rng), "path": f"{split}-{i}.jpg"}
                  for i, (label, (h, w)) in enumerate(zip(labels, sizes))]
        file_split = spec.split_names(split)[0]
        pq.write_table(pa.table({"image": images, "label": labels}),
                       folder / f"{file_split}-00000-of-00001.parquet")
    return root / name
