"""The input contract shared by every evaluation protocol, checked before any compute is spent.

Images are uint8 tensors (N, C, H, W) with pixels in [0, 255] (or a stream of such batches, for datasets that
are not held in memory: `is_image_stream`); labels are integer class indices (N,)
in [0, num_classes); the normalisation statistics have one entry per channel. Every violation raises
ConfigError naming the argument and its value.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from simclr_core.validation import ConfigError, require_choice, require_range

AUTOCAST_DTYPES = (None, torch.bfloat16, torch.float16)


def require_int(name: str, value: Any, *, low: int) -> int:
    """An integer (not a bool, not a float) no smaller than ``low``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}={value!r} must be an integer >= {low}")
    return require_range(name, value, low=low)


def is_image_stream(images: Any) -> bool:
    """An object that yields uint8 batches instead of holding them (data/stream.py's EvalImages): `shape`
    (N, C, H, W) and `batches(batch_size, rows)` -> (B, C, H, W) uint8 tensors, in order, less the images it
    cannot decode; `rows` receives the row of each image yielded."""
    return not isinstance(images, Tensor) and hasattr(images, "batches") and hasattr(images, "shape")


def require_images(name: str, images: Any) -> Tensor:
    if is_image_stream(images):
        if len(images.shape) != 4 or images.shape[0] == 0:
            raise ConfigError(f"{name} streams no images (shape {tuple(images.shape)})")
        return images
    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        got = (f"dtype={images.dtype}, shape={tuple(images.shape)}" if isinstance(images, Tensor)
               else f"type={type(images).__name__}")
        raise ConfigError(f"{name} must be a uint8 tensor of shape (N, C, H, W) in [0, 255]; got {got}")
    if images.shape[0] == 0:
        raise ConfigError(f"{name} is empty (N=0)")
    return images


def require_labels(name: str, labels: Any, *, num_classes: int, length: int | None = None,
                   length_of: str = "") -> Tensor:
    """Integer labels (N,) in [0, num_classes), as many as ``length_of`` has rows (unless length is None).

    The range check reads two numbers back from the device once per call; an out-of-range label would
    otherwise surface as an opaque device-side assert inside scatter/cross-entropy.
    """
    if not isinstance(labels, Tensor) or labels.ndim != 1 or labels.dtype.is_floating_point \
            or labels.dtype.is_complex or labels.dtype == torch.bool:
        got = (f"dtype={labels.dtype}, shape={tuple(labels.shape)}" if isinstance(labels, Tensor)
               else f"type={type(labels).__name__}")
        raise ConfigError(f"{name} must be a 1-D integer tensor of class indices; got {got}")
    if labels.shape[0] == 0:
        raise ConfigError(f"{name} is empty (N=0)")
    if length is not None and labels.shape[0] != length:
        raise ConfigError(f"{name} has {labels.shape[0]} entries but {length_of} has {length} rows; "
                          "they must match")
    low, high = torch.stack([labels.min(), labels.max()]).tolist()
    if low < 0 or high >= num_classes:
        raise ConfigError(f"{name} holds class indices in [{low}, {high}]; valid values lie in "
                          f"[0, {num_classes - 1}] (num_classes={num_classes})")
    return labels


def require_stats(mean: Sequence[float], std: Sequence[float], *, channels: int) -> None:
    for stat_name, stat in (("mean", mean), ("std", std)):
        if isinstance(stat, Tensor):
            stat = stat.tolist()
        if not isinstance(stat, (list, tuple)) or len(stat) != channels:
            raise ConfigError(f"{stat_name}={stat!r} must hold one number per image channel ({channels})")
        for value in stat:
            if stat_name == "std":
                require_range("std", value, low=0, low_inclusive=False)
            else:
                require_range("mean", value)


def require_autocast_dtype(dtype: Any) -> None:
    require_choice("autocast_dtype", dtype, AUTOCAST_DTYPES)


def require_sgd_settings(*, lr: float, weight_decay: float, momentum: float, seed: int, autocast_dtype: Any) -> None:
    """The optimiser's settings that linear evaluation and fine-tuning share (SGD with momentum, seeded, in the
    run's autocast precision)."""
    require_range("lr", lr, low=0, low_inclusive=False)
    require_range("weight_decay", weight_decay, low=0)
    require_range("momentum", momentum, low=0, high=1, high_inclusive=False)
    require_int("seed", seed, low=0)
    require_autocast_dtype(autocast_dtype)


def require_labelled_split(split: str, images: Any, labels: Any, *, num_classes: int) -> None:
    """Check one (images, labels) pair, e.g. split="train" checks train_images and train_labels."""
    images = require_images(f"{split}_images", images)
    require_labels(f"{split}_labels", labels, num_classes=num_classes, length=images.shape[0],
                   length_of=f"{split}_images")
