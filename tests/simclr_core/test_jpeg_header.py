"""Which JPEGs go to nvjpeg (data/jpeg_header.py): read from the markers of files PIL writes here."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from simclr_core.data.jpeg_header import nvjpeg_decodable


def jpeg(mode: str = "RGB", progressive: bool = False, side: int = 40) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (side, side + 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format="JPEG", quality=90, progressive=progressive)
    return buffer.getvalue()


def with_segment(data: bytes, marker: int, payload: bytes) -> bytes:
    """`data` with one more marker segment right after its start-of-image marker."""
    return data[:2] + bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload + data[2:]


def adobe(transform: int) -> bytes:
    """An APP14 "Adobe" segment's payload: version, two flag words, then the colour transform."""
    return b"Adobe" + bytes((0, 100, 0, 0, 0, 0, transform))


def frame_precision(data: bytes, precision: int) -> bytes:
    start = data.index(b"\xff\xc0") + 4        # the baseline frame's payload: its first byte is the precision
    return data[:start] + bytes((precision,)) + data[start + 1:]


@pytest.mark.parametrize("data", [jpeg(), jpeg("L"), jpeg(progressive=True), jpeg() + b"\x00\x00\r\n",
                                  with_segment(jpeg(), 0xEE, adobe(1))],
                         ids=["rgb", "grey", "progressive", "padding after the end", "adobe ycbcr"])
def test_whole_8_bit_jpegs_of_one_or_three_ycbcr_components_go_to_nvjpeg(data):
    assert nvjpeg_decodable(data)


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("data", [jpeg("CMYK"), with_segment(jpeg(), 0xEE, adobe(0)), frame_precision(jpeg(), 12),
                                  jpeg()[:-200], png(), b"", b"\xff\xd8\xff\xd9", b"\xff\xd8" + bytes(50) + b"\xff\xd9"],
                         ids=["cmyk", "adobe rgb", "12 bit", "cut short", "png", "empty", "no frame", "no markers"])
def test_the_cpu_decodes_what_nvjpeg_would_refuse_or_colour_wrongly(data):
    assert not nvjpeg_decodable(data)


def test_a_jpeg_cut_anywhere_or_with_any_byte_changed_is_answered_without_an_exception():
    data = jpeg(side=16)
    rng = np.random.default_rng(1)
    for end in range(len(data)):
        nvjpeg_decodable(data[:end] + b"\xff\xd9")
    for position in rng.integers(0, len(data), 300):
        changed = bytearray(data)
        changed[position] = int(rng.integers(0, 256))
        assert isinstance(nvjpeg_decodable(bytes(changed)), bool)
