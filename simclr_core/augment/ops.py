"""The paper's augmentation vocabulary: one builder per name, `OPS[name](cfg, image_size) -> op`.

Paper, Section 3: "one type of augmentation involves spatial/geometric transformation of data, such
as cropping and resizing (with horizontal flipping), rotation and cutout. The other type of
augmentation involves appearance transformation, such as color distortion (including color
dropping, brightness, contrast, saturation, hue), Gaussian blur, and Sobel filtering."

An op maps a float32 batch (N, 3, H, W) in [0, 1] and a generator to a batch of the same kind,
drawing its own per-sample parameters. Only "crop" changes the size (to image_size). Drawing and
applying are separate steps (`Op.draw`, then `Op.apply`), and every op acts on each row on its own, so
a pipeline may draw the parameters of a whole batch and apply them to slices of it (`take_rows`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from simclr_core.augment import fastpath, functional as F, sampling
from simclr_core.config import AugmentConfig

Params = tuple[Any, ...]


@dataclass(frozen=True)
class Op:
    """One named augmentation, ``op(x, generator) -> x'``, in two steps.

    draw(n, height, width, device, generator) -> params: every random draw, from ``generator`` only;
    per-sample parameters are tensors with a leading dimension n, anything else is shared by all rows.
    apply(x, params): the kernels of functional.py; row i of the result depends only on row i of x and
    of the parameters.
    """
    draw: Callable[[int, int, int, torch.device, torch.Generator], Params]
    apply: Callable[[Tensor, Params], Tensor]
    # apply that may write into x and return it: for callers that own x (the two-view pipeline);
    # None where the op has no cheaper in-place form.
    apply_: Callable[[Tensor, Params], Tensor] | None = None

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        n, _, height, width = x.shape
        return self.apply(x, self.draw(n, height, width, x.device, generator))

    def apply_owned(self, x: Tensor, params: Params) -> Tensor:
        """apply, allowed to overwrite x (which the caller owns and no longer needs)."""
        return (self.apply_ or self.apply)(x, params)


def take_rows(params: Params, rows: Tensor | slice) -> Params:
    """The parameters of the rows ``rows`` (per-sample tensors are indexed, shared values kept)."""
    return tuple(p[rows] if isinstance(p, Tensor) and p.ndim > 0 else p for p in params)


def crop(cfg: AugmentConfig, image_size: int) -> Op:
    """Random crop and resize, then horizontal flip with p = 0.5.

    Paper, Appendix A: "This crop is finally resized to the original size. ... Additionally, the
    random crop (with resize) is always followed by a random horizontal/left-to-right flip with 50%
    probability."
    """
    def draw(n, height, width, device, generator):
        boxes = sampling.crop_boxes(n, height, width, cfg.crop_scale, cfg.crop_ratio, generator)
        return boxes, sampling.bernoulli(n, 0.5, generator)
    return Op(draw, lambda x, p: F.resized_crop(x, p[0], image_size, p[1]))


def color(cfg: AugmentConfig, image_size: int) -> Op:
    """Colour distortion of strength s: colour jitter with p = 0.8, then colour dropping with p = 0.2.

    Paper, Appendix A pseudo-code: ``color_jitter = transforms.ColorJitter(0.8*s, 0.8*s, 0.8*s,
    0.2*s)``, ``RandomApply([color_jitter], p=0.8)``, ``RandomGrayscale(p=0.2)``; the official code
    (data_util.color_jitter_rand) applies the four jitters in a random order.
    """
    def draw(n, height, width, device, generator):
        jittered = sampling.bernoulli(n, 0.8, generator)
        factors, order = sampling.color_jitter_params(n, cfg.color_strength, generator)
        dropped = sampling.bernoulli(n, 0.2, generator)
        identity = torch.tensor([1.0, 1.0, 1.0, 0.0], device=factors.device)
        return torch.where(jittered.unsqueeze(1), factors, identity), order, dropped

    return Op(draw, lambda x, p: fastpath.color_distort(x, *p, inplace=False),
              lambda x, p: fastpath.color_distort(x, *p, inplace=True))


def blur(cfg: AugmentConfig, image_size: int) -> Op:
    """Gaussian blur with probability blur_prob, sigma uniform in blur_sigma.

    Paper, Appendix A: "We blur the image 50% of the time using a Gaussian kernel. We randomly
    sample sigma in [0.1, 2.0], and the kernel size is set to be 10% of the image height/width."
    """
    def draw(n, height, width, device, generator):
        blurred = sampling.bernoulli(n, cfg.blur_prob, generator)
        return blurred, sampling.uniform(n, *cfg.blur_sigma, generator), F.blur_kernel_size(height)

    return Op(draw, lambda x, p: fastpath.blur(x, *p, inplace=False), lambda x, p: fastpath.blur(x, *p, inplace=True))


def cutout(cfg: AugmentConfig, image_size: int) -> Op:
    """Cutout: one square of side cutout_fraction x the image side, at a uniform position, set to 0.

    Paper, Figure 4 "Cutout". Neither the text nor the official code (which lacks this op) says
    what fills the square; we use 0 on [0, 1] pixels, i.e. black before normalisation.
    """
    def draw(n, height, width, device, generator):
        side = max(1, round(cfg.cutout_fraction * min(height, width)))
        return sampling.cutout_corners(n, height, width, side, generator), side
    return Op(draw, lambda x, p: F.cutout(x, *p))


def sobel(cfg: AugmentConfig, image_size: int) -> Op:
    """Sobel filtering (paper, Figure 4) with probability sobel_prob: the edge magnitude of the image, kept as
    3 equal channels."""
    if cfg.sobel_prob == 1.0:                   # every view, and no draw: the generator moves as it always did
        return Op(lambda *_: (), lambda x, p: F.sobel(x))

    def draw(n, height, width, device, generator):
        return (sampling.bernoulli(n, cfg.sobel_prob, generator),)
    return Op(draw, lambda x, p: F.apply_to_subset(x, p[0], lambda rows, _: F.sobel(rows)))


def noise(cfg: AugmentConfig, image_size: int) -> Op:
    """Gaussian noise (paper, Figure 4) with probability noise_prob, a per-sample std uniform in noise_std,
    clamped to [0, 1]."""
    def draw(n, height, width, device, generator):
        std = sampling.uniform(n, *cfg.noise_std, generator)
        draws = sampling.device_generator(generator, device)
        return std, torch.randn((n, 3, height, width), generator=draws, device=device)

    if cfg.noise_prob == 1.0:
        return Op(draw, lambda x, p: F.add_gaussian_noise(x, *p))

    def draw_some(n, height, width, device, generator):
        # The mask after the other draws: the views that get noise get the noise they get at noise_prob 1.
        return *draw(n, height, width, device, generator), sampling.bernoulli(n, cfg.noise_prob, generator)

    def apply(x, p):
        noisy = p[2].to(x.device, non_blocking=True).view(-1, 1, 1, 1)
        return torch.where(noisy, F.add_gaussian_noise(x, p[0], p[1]), x)
    return Op(draw_some, apply)


def rotate(cfg: AugmentConfig, image_size: int) -> Op:
    """Rotation (paper, Figure 4) with probability rotate_prob, by 90, 180 or 270 degrees uniformly per sample.

    A view left upright has k = 0 quarter turns, so k is 0 with probability 1 - rotate_prob and each of 1, 2, 3
    with rotate_prob / 3; rotate_prob = 0.75 draws the angle uniformly from Table 3's {0, 90, 180, 270}.
    """
    def draw(n, height, width, device, generator):
        turns = sampling.quarter_turns(n, generator)
        if cfg.rotate_prob == 1.0:              # no draw for the mask: the generator moves as it always did
            return (turns,)
        rotated = sampling.bernoulli(n, cfg.rotate_prob, generator)
        return (torch.where(rotated, turns, torch.zeros_like(turns)),)
    return Op(draw, lambda x, p: F.rotate90(x, p[0]))


def equalize(cfg: AugmentConfig, image_size: int) -> Op:
    """Histogram equalisation with probability equalize_prob: part of the "additional color distortion" of
    Appendix B.2's broader policy (the paper names the op, not its probability)."""
    def draw(n, height, width, device, generator):
        return (sampling.bernoulli(n, cfg.equalize_prob, generator),)
    return Op(draw, lambda x, p: F.apply_to_subset(x, p[0], lambda rows, _: F.equalize(rows)))


def solarize(cfg: AugmentConfig, image_size: int) -> Op:
    """Solarisation (values at or above solarize_threshold inverted) with probability solarize_prob: the other
    "additional color distortion" of Appendix B.2."""
    def draw(n, height, width, device, generator):
        return (sampling.bernoulli(n, cfg.solarize_prob, generator),)
    return Op(draw, lambda x, p: F.apply_to_subset(x, p[0],
                                                   lambda rows, _: F.solarize(rows, cfg.solarize_threshold)))


def motion_blur(cfg: AugmentConfig, image_size: int) -> Op:
    """Motion blur (Appendix B.2's broader policy) with probability motion_blur_prob: a straight motion at a
    uniform angle in [0, 180) degrees, its length motion_blur_fraction of the image side (made odd, as blur's
    kernel: 3 px at 32 px and 10%, 23 px at 224)."""
    def draw(n, height, width, device, generator):
        moved = sampling.bernoulli(n, cfg.motion_blur_prob, generator)
        length = 2 * (round(cfg.motion_blur_fraction * height) // 2) + 1
        return moved, sampling.uniform(n, 0.0, math.pi, generator), length

    return Op(draw, lambda x, p: F.apply_to_subset(x, p[0], lambda rows, sel: F.motion_blur(rows, p[1][sel], p[2])))


OPS: dict[str, Callable[[AugmentConfig, int], Op]] = {
    "crop": crop, "cutout": cutout, "color": color, "sobel": sobel,
    "noise": noise, "blur": blur, "rotate": rotate,
    # Appendix B.2's broader policy adds these three (with Sobel) to the default one.
    "equalize": equalize, "solarize": solarize, "motion_blur": motion_blur,
}
