"""Small random PNG images as the data tests write them into parquet and arrow files (class names, image columns,
splits without labels), and tar shards of given members."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def random_arrays(n: int, seed: int, side: int = 16) -> list[np.ndarray]:
    """`n` random HWC uint8 images of `side` px."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for _ in range(n)]


def png(array: np.ndarray) -> bytes:
    encoded = io.BytesIO()
    Image.fromarray(array).save(encoded, format="PNG")
    return encoded.getvalue()


def png_rows(n: int, seed: int) -> list[dict]:
    """`n` rows of an image column as `datasets` writes it: {"bytes": PNG, "path": "i.png"}."""
    return [{"bytes": png(array), "path": f"{i}.png"} for i, array in enumerate(random_arrays(n, seed))]


def tar_shard(path: Path, members: dict[str, bytes]) -> Path:
    """An uncompressed tar at `path` of the `members` (name -> bytes), in their order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as archive:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return path
