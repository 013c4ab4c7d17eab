"""The column of a parquet or arrow split that holds its encoded images, and its rows as (bytes, path) pairs.

Two layouts: a struct of `bytes` and `path`, as `datasets` writes an Image feature (a row may hold only a path, to
a file beside the shard), and a plain binary column of encoded images, as pandas or a WebDataset conversion
writes them (`image`, `jpg`, ...: bytes alone, no path). Both paths (resident and streamed) find the column here,
from the Arrow schema, so they agree on which one it is.
"""
from __future__ import annotations

import os
from pathlib import Path

from simclr_core.validation import ConfigError

# Where several binary columns could hold the images, the first of these names among them is taken.
BINARY_IMAGE_NAMES = ("image", "img", "jpg", "jpeg", "png", "webp")


def image_column(schema, where: str) -> str:
    """The image column of an Arrow `schema`: the first struct of bytes and path, else the one binary column (or
    the binary column named as in BINARY_IMAGE_NAMES among several); a ConfigError naming `where` and its columns
    otherwise."""
    import pyarrow as pa

    for field in schema:
        if pa.types.is_struct(field.type) and \
                {field.type.field(i).name for i in range(field.type.num_fields)} >= {"bytes", "path"}:
            return field.name
    binary = [f.name for f in schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
    if len(binary) == 1:
        return binary[0]
    named = [name for name in BINARY_IMAGE_NAMES if name in binary]
    if named:
        return named[0]
    if binary:
        raise ConfigError(f"{where} has several columns of bytes ({', '.join(binary)}) and none is named as an image "
                          f"column ({', '.join(BINARY_IMAGE_NAMES)}): rename the one holding the images")
    raise ConfigError(f"{where} has no image column (a struct of bytes and path, as `datasets` writes images, or a "
                      f"column of encoded bytes); columns: {', '.join(schema.names)}")


def encoded_pairs(images) -> list[tuple[bytes | None, str | None]]:
    """(bytes, path) of each row of an image column's Arrow array (path None for a binary column)."""
    import pyarrow as pa

    if pa.types.is_struct(images.type):
        return list(zip(images.field("bytes").to_pylist(), images.field("path").to_pylist()))
    return [(data, None) for data in images.to_pylist()]


def below(pairs, base: Path | None):
    """(bytes, path) `pairs` with each relative path of a row without bytes read below `base` (the split's folder,
    as `datasets` writes such paths), not below the directory the command runs in."""
    for data, path in pairs:
        if data is None and path and base is not None and not os.path.isabs(path):
            path = str(base / path)
        yield data, path


def stored_paths(images) -> list[str | None]:
    """The path each row of an image column's Arrow array (or chunked array) is stored under; None for a binary
    column, which stores none."""
    import pyarrow as pa

    if not pa.types.is_struct(images.type):
        return [None] * len(images)
    chunks = images.chunks if isinstance(images, pa.ChunkedArray) else [images]
    return [path for chunk in chunks for path in chunk.field("path").to_pylist()]
