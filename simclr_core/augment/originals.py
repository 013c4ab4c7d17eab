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
  - CUDA: two batched matrix products over a zero-padded batch of the parts of the images the boxes cover, in
    groups of at most BATCHED_BYTES, with the resampling weights of every view built in a few tensor ops (no
    per-view kernels, no host sync).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from simclr_core.augment.workers import chunk_pool

# The CUDA path's padded sources per matrix product: 1 GiB holds 256 ImageNet photographs (~400 x 350 px).
BATCHED_BYTES = 1 << 30


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
        out = _batched(images, boxes.cpu(), size)
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
    parts = torch.get_num_threads() if pool is not None else 1        # the pool has one worker per torch thread
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
    """out[v] = Wy[v] @ source[v % B] @ Wx[v]^T, where an image's source is the part of it its views' boxes
    cover, zero-padded to the largest source of its group: the padding gets zero weight. Images go in groups
    whose padded sources take at most BATCHED_BYTES, so one large photograph does not pad the whole batch.
    `boxes` stay on the host (their values shape the groups); the result is on the images' device."""
    b, views = len(images), boxes.shape[0]
    per_image = views // b
    device = images[0].device
    rows_of = boxes.view(per_image, b, 4)                                       # [k, i]: view k of image i
    top, left = rows_of[..., 0].min(0).values, rows_of[..., 1].min(0).values   # what the views cover, per image
    bottom = (rows_of[..., 0] + rows_of[..., 2]).max(0).values
    right = (rows_of[..., 1] + rows_of[..., 3]).max(0).values
    shifted = rows_of.clone()
    shifted[..., 0] -= top
    shifted[..., 1] -= left
    spans = list(zip(top.tolist(), left.tolist(), bottom.tolist(), right.tolist()))
    out = torch.empty((views, 3, size, size), dtype=torch.float32, device=device)
    for group in _groups([(y1 - y0, x1 - x0) for y0, x0, y1, x1 in spans], torch.finfo(dtype).bits // 8):
        height = max(spans[i][2] - spans[i][0] for i in group)
        width = max(spans[i][3] - spans[i][1] for i in group)
        padded = torch.zeros((len(group), 3, height, width), dtype=dtype, device=device)
        for j, i in enumerate(group):                 # one copy per image (grey images broadcast to RGB)
            y0, x0, y1, x1 = spans[i]
            padded[j, :, :y1 - y0, :x1 - x0] = images[i][:, y0:y1, x0:x1]
        padded.div_(255.0)
        g = len(group)
        mine = shifted[:, group].reshape(-1, 4).to(device, non_blocking=True)  # (k*g, 4), view-major
        wy = resample_weights(mine[:, 0], mine[:, 2], size, height, dtype)     # (k*g, S, H)
        wx = resample_weights(mine[:, 1], mine[:, 3], size, width, dtype)      # (k*g, S, W)
        # The views of one image read its source once: stack their row weights.
        wy = wy.view(per_image, g, size, height).transpose(0, 1).reshape(g, per_image * size, height)
        rows = torch.bmm(wy, padded.permute(0, 2, 1, 3).reshape(g, height, 3 * width))   # (g, k*S, 3*W)
        rows = rows.view(g, per_image, size, 3, width).transpose(0, 1).reshape(per_image * g, size, 3, width)
        result = torch.matmul(rows.permute(0, 2, 1, 3), wx.unsqueeze(1).transpose(2, 3))  # (k*g, 3, S, S)
        where = (torch.arange(per_image).view(-1, 1) * b + torch.tensor(group).view(1, -1)).reshape(-1)
        out.index_copy_(0, where.to(device, non_blocking=True), result.float())
    return out


def _groups(sizes: list[tuple[int, int]], item_bytes: int) -> list[list[int]]:
    """Indices grouped, largest first, so that each group's padded (n, 3, max H, max W) fits BATCHED_BYTES."""
    order = sorted(range(len(sizes)), key=lambda i: sizes[i][0] * sizes[i][1], reverse=True)
    groups, height, width = [], 0, 0
    for i in order:
        h, w = max(height, sizes[i][0]), max(width, sizes[i][1])
        if groups and (len(groups[-1]) + 1) * 3 * h * w * item_bytes <= BATCHED_BYTES:
            groups[-1].append(i)
            height, width = h, w
        else:
            groups.append([i])
            height, width = sizes[i]
    return groups


def central_boxes(sizes: Tensor) -> Tensor:
    """(N, 4) [top, left, side, side]: the largest centred square of each image, sizes (N, 2) = [height, width]
    (what resizing the shorter side and taking the centre gives, for ops lists without a crop)."""
    height, width = sizes.unbind(1)
    side = torch.minimum(height, width)
    return torch.stack(((height - side) // 2, (width - side) // 2, side, side), dim=1)


__all__ = ["central_boxes", "resample_weights", "resized_crops"]
