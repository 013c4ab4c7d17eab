"""Multi-crop (SwAV, Caron et al. 2020): extra small views of every image, besides SimCLR's two full-size ones.

The small views go through the same ops as the full-size ones, with their own crop scale and a smaller
output side, so each costs a fraction of a full-size view (a quarter at half the side). SwAV reports that
adding them lifts several methods, SimCLR among them; it is not one of the SimCLR paper's ablations.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import torch
from torch import Tensor

from simclr_core.augment.pipeline import TwoViewAugmentation, build_augmentation, validate_augment_config
from simclr_core.config import AugmentConfig


@dataclass(frozen=True)
class LocalViews:
    """``(images, generator, out) -> out``: `count` small views of each of the B images, written into `out`
    ((count x B, 3, size, size), float32); small view k of image i is row k x B + i.

    The views are made in pairs by a two-view augmentation of the images repeated count / 2 times, so every
    view draws its own parameters and the kernels run once per call over all of them.
    """
    count: int
    pairs: TwoViewAugmentation

    @property
    def image_size(self) -> int:
        return self.pairs.image_size

    def __call__(self, images: Tensor, generator: torch.Generator, *, out: Tensor | None = None) -> Tensor:
        repeated = images.repeat(self.count // 2, 1, 1, 1) if self.count > 2 else images
        view1, view2 = self.pairs(repeated, generator, out=out)
        return out if out is not None else torch.cat([view1, view2])

    def views_from_originals(self, images: Sequence[Tensor], generator: torch.Generator, *,
                             out: Tensor | None = None) -> Tensor:
        """The same small views of images of different sizes (each cropped from its own image)."""
        view1, view2 = self.pairs.views_from_originals(list(images) * (self.count // 2), generator, out=out)
        return out if out is not None else torch.cat([view1, view2])


def build_local_views(cfg: AugmentConfig, image_size: int, mean: tuple[float, float, float],
                      std: tuple[float, float, float]) -> LocalViews | None:
    """The small views `cfg` asks for (None when `cfg.local_crops` is 0); `image_size` is the full-size views'."""
    validate_augment_config(cfg)
    if not cfg.local_crops:
        return None
    small = replace(cfg, crop_scale=cfg.local_crop_scale)
    return LocalViews(cfg.local_crops, build_augmentation(small, cfg.local_crop_side(image_size), mean, std))
