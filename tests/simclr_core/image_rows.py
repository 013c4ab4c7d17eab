"""Small random PNG images as the data tests write them into parquet and arrow files (class names, image columns,
splits without labels)."""
from __future__ import annotations

import io

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
