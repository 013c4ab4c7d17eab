"""Which JPEGs nvjpeg may decode, read from their markers without decoding them.

nvjpeg (torchvision.io.decode_jpeg on CUDA) decodes 8-bit JPEGs of one (grey) or three (YCbCr) components. Others
must go to the CPU, where libjpeg-turbo and PIL handle them:
- four components (CMYK and YCCK, as Adobe writes them: ImageNet holds a few dozen);
- three components that Adobe's APP14 marks as RGB rather than YCbCr (transform 0), which a YCbCr decoder would
  colour wrongly;
- 12-bit samples;
- a file cut short (no end-of-image marker): nvjpeg may hand back part of an uninitialised buffer instead of
  failing, where the CPU decoder refuses it and the image is counted as unreadable.
"""
from __future__ import annotations

_SOI, _EOI = b"\xff\xd8", b"\xff\xd9"
# Start-of-frame markers: baseline, extended, progressive and lossless, Huffman or arithmetic coded
# (0xC4 = DHT, 0xC8 = JPG and 0xCC = DAC sit in that range and are not frames).
_START_OF_FRAME = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_START_OF_SCAN = 0xDA
_APP14 = 0xEE
_WITHOUT_LENGTH = frozenset(range(0xD0, 0xD8)) | {0x01}       # RSTn and TEM carry no length field
# Bytes some writers leave after the end-of-image marker.
_TRAILING_PADDING = b"\x00\r\n \t"


def nvjpeg_decodable(data: bytes) -> bool:
    """True for a whole 8-bit JPEG of 1 or 3 YCbCr components; False for anything else (see the module)."""
    if data[:2] != _SOI or not data.rstrip(_TRAILING_PADDING).endswith(_EOI):
        return False
    adobe_rgb = False
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return False                                  # not a marker where one must be: damaged
        marker = data[position + 1]
        if marker == 0xFF:                                # fill byte before a marker
            position += 1
            continue
        if marker in _WITHOUT_LENGTH:
            position += 2
            continue
        length = int.from_bytes(data[position + 2:position + 4], "big")
        segment = data[position + 4:position + 2 + length]
        if marker == _APP14 and segment[:5] == b"Adobe" and len(segment) >= 12:
            adobe_rgb = segment[11] == 0
        if marker in _START_OF_FRAME:
            if len(segment) < 6:
                return False
            precision, components = segment[0], segment[5]
            return precision == 8 and (components == 1 or (components == 3 and not adobe_rgb))
        if marker == _START_OF_SCAN or length < 2:
            return False                                  # a scan before any frame header, or a bad length
        position += 2 + length
    return False


__all__ = ["nvjpeg_decodable"]
