"""Per-sample random parameters of the augmentations, drawn from an explicit torch.Generator.

Everything is drawn on the generator's device in one batched call per parameter (no per-image
Python loop), so a seed fixes every view. Keep the generator on the CPU: the parameters are then
host tensors, and selecting a subset of the batch on them needs no GPU-to-host sync.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def uniform(n: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    """(n,) float32 drawn uniformly from [low, high)."""
    return torch.rand(n, generator=generator, device=generator.device) * (high - low) + low


def bernoulli(n: int, p: float, generator: torch.Generator) -> Tensor:
    """(n,) bool, each True with probability p."""
    return torch.rand(n, generator=generator, device=generator.device) < p


def crop_boxes(n: int, height: int | Tensor, width: int | Tensor, scale: tuple[float, float],
               ratio: tuple[float, float], generator: torch.Generator, attempts: int = 10) -> Tensor:
    """(n, 4) int64 boxes [top, left, height, width], torchvision RandomResizedCrop.get_params batched.

    ``height`` and ``width`` are the image's, or (n,) int64 tensors with each sample's own image size (images
    of different sizes: the streamed data path); the draws are the same either way.

    Paper, Appendix A: "The crop of random size (uniform from 0.08 to 1.0 in area) of the original
    size and a random aspect ratio (default: of 3/4 to 4/3) of the original aspect ratio is made."
    Each sample tries ``attempts`` (area, log-aspect) draws and keeps the first box that fits; if
    none fits it takes torchvision's fallback, a central crop with the aspect ratio clamped to ``ratio``.
    """
    device = generator.device
    per_sample = isinstance(height, Tensor)
    if per_sample:                                                           # (n, 1): against every attempt
        height, width = height.to(device).view(n, 1), width.to(device).view(n, 1)
    area = height * width
    target_area = area * (torch.rand(n, attempts, generator=generator, device=device)
                          * (scale[1] - scale[0]) + scale[0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(torch.rand(n, attempts, generator=generator, device=device) * (log_hi - log_lo) + log_lo)
    w = torch.sqrt(target_area * aspect).round().long()                      # (n, attempts)
    h = torch.sqrt(target_area / aspect).round().long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)                 # first fitting attempt
    found = fits.any(dim=1)

    if per_sample:
        height, width = height.squeeze(1), width.squeeze(1)
        fallback_h, fallback_w = _central_fallback_per_sample(height, width, ratio)
    else:
        fallback_h, fallback_w = _central_fallback(height, width, ratio)
    h = torch.where(found, h.gather(1, first).squeeze(1), fallback_h)
    w = torch.where(found, w.gather(1, first).squeeze(1), fallback_w)
    u = torch.rand(n, 2, generator=generator, device=device)
    top = torch.where(found, (u[:, 0] * (height - h + 1)).long(), (height - h) // 2)
    left = torch.where(found, (u[:, 1] * (width - w + 1)).long(), (width - w) // 2)
    return torch.stack((top, left, h, w), dim=1)


def _central_fallback(height: int, width: int, ratio: tuple[float, float]) -> tuple[int, int]:
    in_ratio = width / height
    if in_ratio < min(ratio):
        return int(round(width / min(ratio))), width
    if in_ratio > max(ratio):
        return height, int(round(height * max(ratio)))
    return height, width


def _central_fallback_per_sample(height: Tensor, width: Tensor, ratio: tuple[float, float]) -> tuple[Tensor, Tensor]:
    """_central_fallback for (n,) sizes (Python's round() and torch.round both round half to even)."""
    in_ratio = width / height
    narrow, wide = in_ratio < min(ratio), in_ratio > max(ratio)
    fallback_h = torch.where(narrow, torch.round(width / min(ratio)).long(), height)
    fallback_w = torch.where(wide, torch.round(height * max(ratio)).long(), width)
    return fallback_h, fallback_w


def color_jitter_params(n: int, strength: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Factors (n, 4) [brightness, contrast, saturation, hue] and a per-sample op order (n, 4).

    The paper's ColorJitter(0.8 s, 0.8 s, 0.8 s, 0.2 s): brightness, contrast and saturation
    factors uniform in [max(0, 1 - 0.8 s), 1 + 0.8 s], the hue shift uniform in [-0.2 s, 0.2 s];
    the order is a uniformly random permutation per sample (argsort of i.i.d. uniforms).
    """
    device = generator.device
    u = torch.rand(n, 4, generator=generator, device=device)
    jitter = 0.8 * strength
    low = max(0.0, 1.0 - jitter)
    factors = u * (1.0 + jitter - low) + low
    factors[:, 3] = (u[:, 3] * 2.0 - 1.0) * (0.2 * strength)
    order = torch.rand(n, 4, generator=generator, device=device).argsort(dim=1)
    return factors, order


def cutout_corners(n: int, height: int, width: int, size: int, generator: torch.Generator) -> Tensor:
    """(n, 2) int64 [top, left] of a size x size square placed uniformly inside the image."""
    u = torch.rand(n, 2, generator=generator, device=generator.device)
    return torch.stack((u[:, 0] * (height - size + 1), u[:, 1] * (width - size + 1)), dim=1).long()


def quarter_turns(n: int, generator: torch.Generator) -> Tensor:
    """(n,) int64 uniform in {1, 2, 3}: rotation by 90, 180 or 270 degrees."""
    return torch.randint(1, 4, (n,), generator=generator, device=generator.device)


def device_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """A generator on ``device`` for bulk draws (noise images), seeded from ``generator``.

    The same generator returns itself; otherwise one seed is drawn from it (a host value when the
    generator is on the CPU), so large noise tensors are drawn where they are used.
    """
    if generator.device == device:
        return generator
    seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
    return torch.Generator(device=device).manual_seed(seed)
