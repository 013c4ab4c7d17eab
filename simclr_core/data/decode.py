"""Encoded images (JPEG/PNG bytes or files) -> one uint8 array of shape (N, 3, S, S), decoded once.

Images that are not already S x S are brought to a square at decode time, so a split batches as one tensor:
the shorter side is resized to round(S * margin) (bilinear, antialiased, as torchvision's `Resize`) and the
centre S x S is kept. margin is 8/7 for photo collections (ImageNet's 256 -> 224) and 1 for
fixed-size square datasets (a plain rescale). Deviation: the training crop-and-resize then samples from this
square, not from the full photograph as in the paper's ImageNet pipeline.
"""
from __future__ import annotations

import io
import warnings
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2.functional import resize

from simclr_core.data.bad_images import (FIRST_NAMED, none_readable_error, reason, skipped_warning, too_many,
                                         too_many_error)
from simclr_core.data.image_column import encoded_pairs
from simclr_core.validation import ConfigError

try:  # torchvision 0.29 deprecates its image decoders (for torchcodec); PIL takes over once they are gone.
    from torchvision.io import ImageReadMode, decode_image as tv_decode_image
except ImportError:  # pragma: no cover - depends on the torchvision version
    tv_decode_image = None


def fit_square(image: torch.Tensor, size: int, margin: float = 1.0) -> torch.Tensor:
    """(3, H, W) uint8 -> (3, size, size): shorter side resized to round(size * margin) (bilinear, antialiased;
    long side rounded down as torchvision's Resize does), then the centre size x size kept."""
    height, width = image.shape[-2:]
    if height == width == size:
        return image
    short, long = min(height, width), max(height, width)
    short_target = round(size * margin)
    long_target = int(short_target * long / short)
    new_h, new_w = (short_target, long_target) if height <= width else (long_target, short_target)
    if (new_h, new_w) != (height, width):
        image = resize(image, [new_h, new_w], antialias=True)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    return image[:, top:top + size, left:left + size]


def decode_image(data: bytes | None, path: str | None) -> torch.Tensor:
    """One (3, H, W) uint8 RGB image from its encoded bytes, or from its file when only a path is stored.
    torchvision's decoders (JPEG, PNG, WebP, GIF; 2.5x faster than PIL on CIFAR's JPEGs and bit-identical);
    PIL for anything they refuse. An animated image gives its first frame (as PIL shows it); 16-bit samples are
    scaled to 8 bits; float or 32-bit integer samples (scientific TIFFs), whose range no file states, are refused."""
    if data is None:
        if path is None:
            raise ValueError("the row has neither image bytes nor a path")
        with open(path, "rb") as f:
            data = f.read()
    if tv_decode_image is not None:
        try:
            image = tv_decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
            if image.ndim == 4:                   # an animated GIF or WebP: (frames, 3, H, W)
                image = image[0]
            if image.dtype == torch.uint16:       # a 16-bit PNG
                return _eight_bits(image)
            if image.dtype == torch.uint8:
                return image
        except RuntimeError:
            pass
    with Image.open(io.BytesIO(data)) as pil:
        if pil.mode.startswith("I;16"):
            grey = _eight_bits(torch.from_numpy(np.array(pil).astype(np.int32)))
            return grey.expand(3, -1, -1).contiguous()
        if pil.mode in ("I", "F"):
            raise ValueError(f"its samples are {'32-bit integers' if pil.mode == 'I' else 'floats'} (PIL mode "
                             f"{pil.mode!r}), whose range the file does not state; convert it to 8 bits per channel")
        return torch.from_numpy(np.array(pil.convert("RGB"))).permute(2, 0, 1)


def _eight_bits(samples: torch.Tensor) -> torch.Tensor:
    """16-bit samples (0..65535) rounded to 8 bits (0..255)."""
    return torch.div(samples.to(torch.int32) * 255 + 32767, 65535, rounding_mode="floor").to(torch.uint8)


def iter_encoded(dataset, column: str, indices: np.ndarray, batch_size: int = 1024
                 ) -> Iterator[tuple[bytes | None, str | None]]:
    """(bytes, path) of rows ``indices`` of an image column (image_column.py), read in Arrow batches without
    decoding."""
    rows = dataset.select(indices).select_columns([column]).with_format("arrow")
    for batch in rows.iter(batch_size=batch_size):
        yield from encoded_pairs(batch.column(column).combine_chunks())


def mixed_sizes_error(first: str, first_size: tuple[int, int], other: str, other_size: tuple[int, int]
                      ) -> ConfigError:
    """The error for a split decoded without data.image_size whose images differ in size (width, height)."""
    return ConfigError(
        f"{first} is {first_size[0]} x {first_size[1]} px and {other} is {other_size[0]} x {other_size[1]} px: "
        "without data.image_size a split is decoded at its first image's size, so data.loader=resident needs "
        "images of one size (the others would be squeezed to it); set data.image_size=N (each image's shorter side "
        "resized to N, then centre-cropped; 224 for photographs) or data.loader=stream (each view cropped from its "
        "own image)")


def split_sizes_error(train: str, train_side: int, test: str, test_side: int) -> ConfigError:
    """The error for a train and a test split that decoding without data.image_size gives different sides."""
    return ConfigError(
        f"the train split decodes at {train_side} px ({train}) and the test split at {test_side} px ({test}): "
        "without data.image_size each split is decoded at its first image's size, so evaluation would compare "
        "features of images of another size than the encoder trained on; set data.image_size=N (both splits "
        "resized to N, then centre-cropped) or data.loader=stream")


def decode_to_array(encoded: Iterator[tuple[bytes | None, str | None]], count: int, size: int | None,
                    margin: float, allocate: Callable[[tuple[int, ...]], np.ndarray],
                    where: Callable[[int], str] = "image {}".format) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Decode ``count`` images into ``allocate((count, 3, S, S))``; S = size, or the first readable image's (shorter)
    side when size is None, and then every image must have that image's size (else mixed_sizes_error). A plain
    loop: the decoder dominates, and threads did not help on 32 px JPEGs.

    Returns (the readable images, in order: the first rows of the allocated array, (position, "where (why)") of each
    image that could not be decoded). An unreadable image is left out, not replaced by a copy of another: its caller
    drops its label with it, so no image carries another's label and no image counts twice (in a kNN test split, a
    fine-tuning subset). bad_images.py's policy: the first FIRST_NAMED are warned of by name (``where(i)``, e.g.
    "row 17 of /x/train.parquet"), the rest counted in one more warning, and a ConfigError stops the decoding as
    soon as the unreadable images are too many for the whole split, or when none is readable."""
    out, first, kept = None, None, 0
    unreadable: list[tuple[int, str]] = []
    smaller, smallest = 0, None         # images whose shorter side is below a given size: upscaled, as the stream's
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torchvision.io.image")
        for i, (data, path) in enumerate(encoded):
            def named() -> str:         # only for messages: where() may cost more than a decode of a 32 px image
                return where(i) + (f" (path {path!r})" if path else "")

            try:
                image = decode_image(data, path)
            except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
                _skip(unreadable, i, named(), reason(exc), count)
                continue
            width_height = (image.shape[-1], image.shape[-2])
            if out is None:
                if size is None:
                    first = (named(), width_height)
                size = size or min(image.shape[-2:])
                out = allocate((count, 3, size, size))
            elif first is not None and width_height != first[1]:
                raise mixed_sizes_error(*first, named(), width_height)
            if first is None and min(width_height) < size:
                smaller += 1
                if smallest is None or min(width_height) < min(smallest[1]):
                    smallest = (named(), width_height)
            out[kept] = fit_square(image, size, margin).numpy()
            kept += 1
    if out is None:
        if not unreadable:
            raise ValueError("no images to decode")
        raise none_readable_error(count, unreadable[0][1])
    if len(unreadable) > FIRST_NAMED:
        warnings.warn(f"{len(unreadable)} of the {count} images could not be decoded and are left out, the first "
                      f"{FIRST_NAMED} named above; final.json counts them", stacklevel=2)
    if smaller:
        warnings.warn(f"{smaller} of the {kept} images are smaller than data.image_size={size} px (the smallest: "
                      f"{smallest[0]}, {smallest[1][0]} x {smallest[1][1]} px): they were upscaled to it", stacklevel=2)
    return out[:kept], unreadable


def _skip(unreadable: list[tuple[int, str]], position: int, where: str, why: str, count: int) -> None:
    """Record image `position` as unreadable: a warning naming it (the first few), and the ConfigError once the
    unreadable images are too many for a split of `count`, whatever the images not decoded yet hold."""
    unreadable.append((position, f"{where} ({why})"))
    if len(unreadable) <= FIRST_NAMED:
        warnings.warn(skipped_warning(where, why, "it is left out of the decoded split, with its label"),
                      stacklevel=3)
    if too_many(len(unreadable), count):
        raise too_many_error(f"at least {len(unreadable)}", f"the {count} images of the split",
                             [text for _, text in unreadable[:FIRST_NAMED]])
