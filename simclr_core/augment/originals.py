"""Views cropped from each image at its own size: the paper's random-resized crop on the original photograph.

Paper, Appendix A: "The crop of random size (uniform from 0.08 to 1.0 in area) of the original size and a
random aspect ratio (default: of 3/4 to 4/3) of the original aspect ratio is made. This crop is finally
resized to the original size." The streamed data path (simclr_core/data/stream.py) hands over a batch of
decoded images of different sizes; `resized_crops` cuts each view's box out of its own image and resizes
it to the view side as torchvision's `resized_crop(..., antialias=True)` does (bilinear, a wider filter
when shrinking), then flips it where asked.

Two implementations of the same formula, chosen by device (the one seam for speed here):
  - CPU: one antialiased interpolate per view on the uint8 crop, the views shared among the augmentation
    threads (ATen's separable uint8 kernel touches only the crop's pixels, 1.7x faster than on floats; its
    result is rounded to whole grey levels, within 1/255 of the float64 reference);
  - CUDA: the whole batch at once as two batched matrix products over a zero-padded batch, with the
    resampling weights of every view built in a few tensor ops (no per-view kernels, no host sync).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from simclr_core.augment.workers import chunk_pool


def resample_weights(start: Tensor, length: Tensor, out_size: int, in_size: int,
                     dtype: torch.dtype = torch.float32) -> Tensor:
    """(V, out_size, in_size): row i of view v resamples the segment [start_v, start_v + length_v) of an axis of
    `in_size` pixels to `out_size` pixels as ATen's antialiased bilinear resize (interp_size 2, align_corners
    False): the triangle filter widened by the scale when shrinking, weights normalised to sum to 1, nothing
    outside the segment."""
    device = start.device
    start, length = start.to(dtype).unsqueeze(1), length.to(dtype).unsqueeze(1)        # (V, 1)
    scale = length / out_size
    support = torch.where(scale >= 1, scale, torch.ones_like(scale))
    invscale = torch.where(scale >= 1, 1 / scale, torch.ones_like(scale))
    center = scale * (torch.arange(out_size, device=device, dtype=dtype) + 0.5)         # (V, S), in the segment
    low = torch.clamp(torch.trunc(center - support + 0.5), min=0)
    high = torch.minimum(torch.trunc(center + support + 0.5), length)
    position = torch.arange(in_size, device=device, dtype=dtype).view(1, 1, -1) - start.unsqueeze(2)
    inside = (position >= low.unsqueeze(2)) & (position < high.unsqueeze(2))
    weights = torch.clamp(1 - ((position - center.unsqueeze(2) + 0.5) * invscale.unsqueeze(2)).abs(), min=0)
    weights = weights * inside
    return weights / weights.sum(dim=2, keepdim=True)


def resized_crops(images: Sequence[Tensor], boxes: Tensor, size: int, flip: Tensor | None = None) -> Tensor:
    """Views (V, 3, size, size) float32 in [0, 1] of uint8 images (C, H_i, W_i) of any sizes, C in {1, 3}.

    View v crops boxes[v] = [top, left, height, width] (in pixels of its image) out of images[v % B] (so the
    two views of image i are rows i and B + i) and resizes it to size x size; flip (V,) bool mirrors it."""
    b, views = len(images), boxes.shape[0]
    if b == 0 or views % b:
        raise ValueError(f"{views} boxes for {b} images: expected a multiple of {b} (views per image x images)")
    device = images[0].device
    if device.type == "cuda":
        out = _batched(images, boxes.to(device, non_blocking=True), size)
    else:
        out = _per_view(images, boxes.cpu(), size)
    if flip is not None:
        flip = flip.to(out.device, non_blocking=True)
        out = torch.where(flip.view(-1, 1, 1, 1), out.flip(3), out)
    return out.clamp_(0.0, 1.0)


def _per_view(images: Sequence[Tensor], boxes: Tensor, size: int) -> Tensor:
    """The views split among the CPU augmentation workers (one torch thread each; the kernels release the GIL)."""
    out = torch.empty((boxes.shape[0], 3, size, size), dtype=torch.float32)
    rows = boxes.tolist()
    pool = chunk_pool()
    parts = pool._max_workers if pool is not None else 1
    chunks = [range(start, len(rows), parts) for start in range(parts)]
    if pool is None:
        _crop_views(images, rows, chunks[0], size, out)
    else:
        for future in [pool.submit(_crop_views, images, rows, chunk, size, out) for chunk in chunks]:
            future.result()
    return out


def _crop_views(images: Sequence[Tensor], rows: list, views: range, size: int, out: Tensor) -> None:
    b = len(images)
    for v in views:
        top, left, height, width = rows[v]
        crop = images[v % b][:, top:top + height, left:left + width].unsqueeze(0)
        resized = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out[v].copy_(resized[0].expand(3, -1, -1)).div_(255.0)


def _batched(images: Sequence[Tensor], boxes: Tensor, size: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """out[v] = Wy[v] @ image[v % B] @ Wx[v]^T over a zero-padded batch: the padding gets zero weight."""
    b, views = len(images), boxes.shape[0]
    per_image = views // b
    height = max(int(x.shape[-2]) for x in images)
    width = max(int(x.shape[-1]) for x in images)
    padded = torch.zeros((b, 3, height, width), dtype=dtype, device=boxes.device)
    for i, image in enumerate(images):                  # one copy per image (grey images broadcast to RGB)
        padded[i, :, :image.shape[-2], :image.shape[-1]] = image
    padded.div_(255.0)
    top, left, box_h, box_w = boxes.unbind(1)
    wy = resample_weights(top, box_h, size, height, dtype)                    # (V, S, H)
    wx = resample_weights(left, box_w, size, width, dtype)                    # (V, S, W)
    # The views of image i are rows i, B + i, ...: gather them per image so each image is read once.
    wy = wy.view(per_image, b, size, height).transpose(0, 1).reshape(b, per_image * size, height)
    rows = torch.bmm(wy, padded.permute(0, 2, 1, 3).reshape(b, height, 3 * width))   # (B, k*S, 3*W)
    rows = rows.view(b, per_image, size, 3, width).transpose(0, 1).reshape(views, size, 3, width)
    out = torch.matmul(rows.permute(0, 2, 1, 3), wx.unsqueeze(1).transpose(2, 3))     # (V, 3, S, S)
    return out.float()


def central_boxes(sizes: Tensor) -> Tensor:
    """(N, 4) [top, left, side, side]: the largest centred square of each image, sizes (N, 2) = [height, width]
    (what resizing the shorter side and taking the centre gives, for ops lists without a crop)."""
    height, width = sizes.unbind(1)
    side = torch.minimum(height, width)
    return torch.stack(((height - side) // 2, (width - side) // 2, side, side), dim=1)


__all__ = ["central_boxes", "resample_weights", "resized_crops"]
