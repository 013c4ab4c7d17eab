"""The paper's augmentation vocabulary: one builder per name, `OPS[name](cfg, image_size) -> op`.

Paper, Section 3: "one type of augmentation involves spatial/geometric transformation of data, such
as cropping and resizing (with horizontal flipping), rotation and cutout. The other type of
augmentation involves appearance transformation, such as color distortion (including color
dropping, brightness, contrast, saturation, hue), Gaussian blur, and Sobel filtering."

An op maps a float32 batch (N, 3, H, W) in [0, 1] and a generator to a batch of the same kind,
drawing its own per-sample parameters. Only "crop" changes the size (to image_size).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from simclr_core.augment import functional as F
from simclr_core.augment import sampling
from simclr_core.config import AugmentConfig

Op = Callable[[Tensor, torch.Generator], Tensor]


def crop(cfg: AugmentConfig, image_size: int) -> Op:
    """Random crop and resize, then horizontal flip with p = 0.5.

    Paper, Appendix A: "This crop is finally resized to the original size. ... Additionally, the
    random crop (with resize) is always followed by a random horizontal/left-to-right flip with 50%
    probability."
    """
    def apply(x: Tensor, generator: torch.Generator) -> Tensor:
        n, _, height, width = x.shape
        boxes = sampling.crop_boxes(n, height, width, cfg.crop_scale, cfg.crop_ratio, generator)
        flip = sampling.bernoulli(n, 0.5, generator)
        return F.resized_crop(x, boxes, image_size, flip)
    return apply


def color(cfg: AugmentConfig, image_size: int) -> Op:
    """Colour distortion of strength s: colour jitter with p = 0.8, then colour dropping with p = 0.2.

    Paper, Appendix A pseudo-code: ``color_jitter = transforms.ColorJitter(0.8*s, 0.8*s, 0.8*s,
    0.2*s)``, ``RandomApply([color_jitter], p=0.8)``, ``RandomGrayscale(p=0.2)``; the official code
    (data_util.color_jitter_rand) applies the four jitters in a random order.
    """
    def apply(x: Tensor, generator: torch.Generator) -> Tensor:
        n = x.shape[0]
        jittered = sampling.bernoulli(n, 0.8, generator)
        factors, order = sampling.color_jitter_params(n, cfg.color_strength, generator)
        dropped = sampling.bernoulli(n, 0.2, generator)
        identity = torch.tensor([1.0, 1.0, 1.0, 0.0], device=factors.device)
        x = F.color_jitter(x, torch.where(jittered.unsqueeze(1), factors, identity), order)
        # color_jitter returned a fresh tensor, so colour dropping may write into it.
        return F.apply_to_subset(x, dropped, lambda rows, _: F.rgb_to_grayscale(rows, num_output_channels=3),
                                 inplace=True)
    return apply


def blur(cfg: AugmentConfig, image_size: int) -> Op:
    """Gaussian blur with probability blur_prob, sigma uniform in blur_sigma.

    Paper, Appendix A: "We blur the image 50% of the time using a Gaussian kernel. We randomly
    sample sigma in [0.1, 2.0], and the kernel size is set to be 10% of the image height/width."
    """
    def apply(x: Tensor, generator: torch.Generator) -> Tensor:
        n, _, height, _ = x.shape
        blurred = sampling.bernoulli(n, cfg.blur_prob, generator)
        sigma = sampling.uniform(n, *cfg.blur_sigma, generator)
        size = F.blur_kernel_size(height)
        return F.apply_to_subset(x, blurred, lambda rows, idx: F.gaussian_blur(rows, size, sigma[idx]))
    return apply


def cutout(cfg: AugmentConfig, image_size: int) -> Op:
    """Cutout: one square of side cutout_fraction x the image side, at a uniform position, set to 0.

    Paper, Figure 4 "Cutout". Neither the text nor the official code (which lacks this op) says
    what fills the square; we use 0 on [0, 1] pixels, i.e. black before normalisation.
    """
    def apply(x: Tensor, generator: torch.Generator) -> Tensor:
        n, _, height, width = x.shape
        side = max(1, round(cfg.cutout_fraction * min(height, width)))
        corners = sampling.cutout_corners(n, height, width, side, generator)
        return F.cutout(x, corners, side)
    return apply


def sobel(cfg: AugmentConfig, image_size: int) -> Op:
    """Sobel filtering (paper, Figure 4): the edge magnitude of the image, kept as 3 equal channels."""
    def apply(x: Tensor, generator: torch.Generator) -> Tensor:
        return F.sobel(x)
    return apply


def noise(cfg: AugmentConfig, image_size: int) -> Op:
    """Gaussian noise (paper, Figure 4) with a per-sample std uniform in noise_std, clamped to [0, 1]."""
    def apply(x: Tensor, generator: torch.Generator) -> Tensor:
        std = sampling.uniform(x.shape[0], *cfg.noise_std, generator)
        draws = sampling.device_generator(generator, x.device)
        return F.add_gaussian_noise(x, std, torch.randn(x.shape, generator=draws, device=x.device))
    return apply


def rotate(cfg: AugmentConfig, image_size: int) -> Op:
    """Rotate {90, 180, 270} degrees (paper, Figure 4), one of the three uniformly per sample."""
    def apply(x: Tensor, generator: torch.Generator) -> Tensor:
        return F.rotate90(x, sampling.quarter_turns(x.shape[0], generator))
    return apply


OPS: dict[str, Callable[[AugmentConfig, int], Op]] = {
    "crop": crop, "cutout": cutout, "color": color, "sobel": sobel,
    "noise": noise, "blur": blur, "rotate": rotate,
}
