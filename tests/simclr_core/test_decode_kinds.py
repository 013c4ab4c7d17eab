"""Image kinds that decode to something other than one 8-bit RGB frame (data/decode.py): animated images, 16-bit
and float samples; and a file that cannot be read on the resident path."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from simclr_core.data.decode import decode_image, decode_to_array


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_an_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (12, 10), colour) for colour in ((200, 0, 0), (0, 0, 200))]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    image = decode_image(data, None)
    assert image.shape == (3, 10, 12) and image.dtype == torch.uint8
    assert image[0].float().mean() > 150 and image[2].float().mean() < 50          # red: the first frame


@pytest.mark.parametrize("channels", [1, 3], ids=["grey", "rgb"])
def test_16_bit_samples_are_scaled_to_8_bits_not_clamped(channels):
    """A 16-bit PNG of values up to 40,000 decoded as 99% white: its samples were clamped to 255."""
    samples = np.linspace(0, 65535, 12 * 10).reshape(10, 12).astype(np.uint16)
    if channels == 1:
        data = encoded(Image.fromarray(samples), "PNG")
    else:   # PIL writes no 16-bit RGB: raw PNG chunks
        data = _png_rgb16(np.stack([samples] * 3, axis=-1))
    image = decode_image(data, None)
    expected = torch.from_numpy(np.round(samples / 257).astype(np.uint8))
    assert image.shape == (3, 10, 12) and image.dtype == torch.uint8
    assert (image.int() - expected.int()).abs().max() <= 1 and (image[0] == image[2]).all()


def _png_rgb16(pixels: np.ndarray) -> bytes:
    import struct
    import zlib

    height, width, _ = pixels.shape
    raw = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_float_samples_are_refused_naming_why():
    data = encoded(Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32)), "TIFF")
    with pytest.raises(ValueError, match=r"its samples are floats \(PIL mode 'F'\).*convert it to 8 bits"):
        decode_image(data, None)


def test_a_file_of_a_folder_that_cannot_be_read_is_named_on_the_resident_path(tmp_path):
    """A chunk of files that cannot be read (no permission, say) was an exception out of the reading loop, naming
    no file; each of its files is now opened on its own and the one that fails is named."""
    from simclr_core.data.images import _iter_files

    readable = tmp_path / "0.png"
    readable.write_bytes(encoded(Image.new("RGB", (8, 8)), "PNG"))

    class Index:
        paths = [str(readable), str(tmp_path / "locked.png")]

        def read(self, rows):
            raise PermissionError(13, "Permission denied", self.paths[1])

    with pytest.warns(UserWarning, match=r"unreadable image: image 1 \(path '\S+/locked.png'\) \(File"):
        images, unreadable = decode_to_array(_iter_files(Index(), np.arange(2)), 2, 8, 1.0,
                                             lambda shape: np.zeros(shape, np.uint8))
    assert images.shape == (1, 3, 8, 8) and [position for position, _ in unreadable] == [1]
