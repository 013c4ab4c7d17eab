"""Where speed code attaches to the augmentation: one function per concern, each computing what its eager
reference in functional.py computes (tested against it), so that ops.py and pipeline.py read as the paper.

    crop_resize_flip  the first crop of a batch: native.cpp's one pass from uint8 on a CPU, else grid_sample
    color_distort     colour jitter + colour dropping: native.cpp's per-image kernel on a CPU batch it owns
    blur              Gaussian blur of chosen rows: native.cpp on a CPU batch it owns
    normalize         (x - mean) / std into `out`: native.cpp on a CPU, any memory format
    in_chunks         a CPU batch applied chunk by chunk, the chunks side by side on single-threaded workers

The native kernels are built for this CPU on first use (native.py); without a compiler, or with
SIMCLR_NATIVE_AUGMENT=0, every function takes its eager path. GPUs always take the eager paths.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from simclr_core.augment import functional as F, native
from simclr_core.augment.workers import chunk_pool


def native_kernels_for(x: Tensor):
    """native.cpp's kernels where they can run on x in place (a contiguous float32 CPU batch), else None."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or not x.is_contiguous():
        return None
    return native.kernels()


def crop_resize_flip(images: Tensor, boxes: Tensor, flip: Tensor, size: int) -> Tensor:
    """(V, 3, size, size) float32 in [0, 1], V = len(boxes) a multiple of B: view v crops boxes[v] out of
    images[v % B], resizes it and flips it where flip[v], as F.resized_crop does (antialias=False)."""
    b, v = images.shape[0], boxes.shape[0]
    kernels = native.kernels() if images.device.type == "cpu" and images.dtype == torch.uint8 else None
    if kernels is not None:     # one pass: crop, resize, flip and uint8 -> float, straight from the images
        views = torch.empty((v, 3, size, size), dtype=torch.float32)
        kernels.resized_crop_uint8(images.contiguous(), boxes, flip, views)
        return views
    # Flipping the uint8 images moves a quarter of the bytes of flipping float views, and grid_sample runs
    # ~1.5x slower on a right-to-left grid (measured): crop the mirrored image's mirrored box instead.
    both = torch.cat((images, images.flip(3)))                           # the images, then their mirrors
    which = torch.arange(v, device=flip.device) % b + b * flip.long()
    sources = F.to_float_rgb(both.index_select(0, which.to(images.device, non_blocking=True)))
    return F.resized_crop(sources, F.mirror_boxes(boxes, images.shape[-1], flip), size)


def color_distort(x: Tensor, factors: Tensor, order: Tensor, dropped: Tensor, *, inplace: bool) -> Tensor:
    """F.color_jitter with each sample's factors and order, then grayscale where `dropped`. With `inplace` x
    may be overwritten (and is, by the native kernel)."""
    kernels = native_kernels_for(x) if inplace else None
    if kernels is not None:
        kernels.color_(x, factors, order, dropped)
        return x
    x = F.color_jitter(x, factors, order, inplace=inplace)
    # x is now color_jitter's own tensor, so colour dropping may write into it.
    return F.apply_to_subset(x, dropped, lambda rows, _: F.rgb_to_grayscale(rows, num_output_channels=3),
                             inplace=True)


def blur(x: Tensor, blurred: Tensor, sigma: Tensor, size: int, *, inplace: bool) -> Tensor:
    """F.gaussian_blur with each sample's sigma on the rows where `blurred`."""
    kernels = native_kernels_for(x) if inplace else None
    if kernels is not None:
        rows = blurred.nonzero().squeeze(1)
        if size > 1 and rows.numel():
            kernels.blur_rows_(x, rows, F.blur_kernels(size, sigma[rows].to(torch.float32)))
        return x
    return F.apply_to_subset(x, blurred, lambda rows, idx: F.gaussian_blur(rows, size, sigma[idx]), inplace=inplace)


def normalize(x: Tensor, mean: Sequence[float], std: Sequence[float], out: Tensor | None) -> Tensor:
    """F.normalize into `out` (any memory format) or a new tensor."""
    kernels = native_kernels_for(x)
    if kernels is None or not (out is None or out.is_contiguous()
                               or out.is_contiguous(memory_format=torch.channels_last)):
        return F.normalize(x, mean, std, out=out)
    out = torch.empty_like(x) if out is None else out
    kernels.normalize_into(x, *F.normalize_affine(mean, std), out)
    return out


def in_chunks(views: Callable, images: Tensor, params, take: Callable, out: Tensor | None, size: int,
              chunk_rows: int, count: int = 2) -> tuple[Tensor, ...] | None:
    """views(images, params, out=(out1, ..)) applied to chunks of a CPU batch of B images, side by side on
    the augmentation workers; None when the batch fits one chunk (the caller applies it whole).
    `take(params, start, stop, B)` gives the chunk's parameters; `out` (count x B, 3, size, size) receives
    view k of image i in row k x B + i (a new tensor if None); the `count` views are returned."""
    b = images.shape[0]
    pool = chunk_pool()
    rows = chunk_rows if pool is None else min(chunk_rows, -(-b // torch.get_num_threads()))  # a chunk per worker
    if rows >= b:
        return None
    if out is None:
        out = torch.empty((count * b, 3, size, size), dtype=torch.float32)
    parts = out.chunk(count)
    chunks = [(images[start:stop], take(params, start, stop, b), tuple(part[start:stop] for part in parts))
              for start, stop in ((start, min(start + rows, b)) for start in range(0, b, rows))]
    if pool is None:
        for chunk, chunk_params, chunk_out in chunks:
            views(chunk, chunk_params, out=chunk_out)
    else:
        for future in [pool.submit(views, *chunk) for chunk in chunks]:
            future.result()
    return parts


__all__ = ["blur", "color_distort", "crop_resize_flip", "in_chunks", "native_kernels_for", "normalize"]
