"""Compose named ops into the stochastic module that turns a batch into two correlated views.

Paper, Section 2.1: "A stochastic data augmentation module that transforms any given data example
randomly resulting in two correlated views of the same example, denoted x~_i and x~_j, which we
consider as a positive pair."
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from simclr_core.augment import functional as F
from simclr_core.augment.ops import OPS, Op
from simclr_core.config import AugmentConfig
from simclr_core.validation import ConfigError, require_choice, require_pair, require_range


@dataclass(frozen=True)
class TwoViewAugmentation:
    """``(images, generator) -> (view1, view2)``, float32 (B, 3, image_size, image_size), normalised.

    ``both`` runs on both views (each view draws its own parameters: the two views are stacked
    into one 2B batch, so every op runs once per call); ``first_only`` then runs on view 1 only.
    """
    both: tuple[tuple[str, Op], ...]
    first_only: tuple[tuple[str, Op], ...]
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, images: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        x = F.to_float_rgb(images)                                           # (B, 3, H, W) in [0, 1]
        if "crop" not in (name for name, _ in self.both):
            x = F.resize(x, self.image_size)
        views = torch.cat((x, x))                                            # (2B, 3, H, W)
        for _, op in self.both:
            views = op(views, generator)
        view1, view2 = views.chunk(2)
        for _, op in self.first_only:
            view1 = op(view1, generator)
        return F.normalize(view1, self.mean, self.std), F.normalize(view2, self.mean, self.std)

    def __repr__(self) -> str:
        both = ", ".join(name for name, _ in self.both) or "resize"
        first = ", ".join(name for name, _ in self.first_only)
        return (f"TwoViewAugmentation(both=[{both}], first_only=[{first}], image_size={self.image_size})")


def build_augmentation(cfg: AugmentConfig, image_size: int, mean: tuple[float, float, float],
                       std: tuple[float, float, float]) -> TwoViewAugmentation:
    """Build the two-view augmentation from ``cfg``; raise ConfigError on any bad name or value.

    ``cfg.ops`` run in order on both views. A name listed twice runs once (the diagonal of Figure 5,
    e.g. ("color", "color"), is the single transformation). Without "crop", images are only resized
    to ``image_size``. With ``cfg.one_branch``, the paper's Figure 5 protocol: "we always first
    randomly crop images and resize them to the same resolution, and we then apply the targeted
    transformation(s) only to one branch of the framework in Figure 2, while leaving the other
    branch as the identity".
    """
    validate_augment_config(cfg)
    require_range("image_size", image_size, low=1)
    for name, values in (("mean", mean), ("std", std)):
        if len(values) != 3:
            raise ConfigError(f"{name}={values!r} must have 3 values (R, G, B)")
        for v in values:
            require_range(name, v, low=0 if name == "std" else None, low_inclusive=name != "std")

    names = tuple(dict.fromkeys(cfg.ops))
    build = {name: OPS[name](cfg, image_size) for name in (*names, "crop")}
    if cfg.one_branch:
        both = (("crop", build["crop"]),)
        first_only = tuple((name, build[name]) for name in names if name != "crop")
    else:
        both, first_only = tuple((name, build[name]) for name in names), ()
    return TwoViewAugmentation(both, first_only, int(image_size), tuple(mean), tuple(std))


def validate_augment_config(cfg: AugmentConfig) -> AugmentConfig:
    """Raise ConfigError naming the bad field, its value and the valid choices or range."""
    if not cfg.ops:
        raise ConfigError("augment.ops is empty; name at least one of: " + ", ".join(map(repr, OPS)))
    for op in cfg.ops:
        require_choice("augment.ops", op, OPS)
    require_range("augment.color_strength", cfg.color_strength, low=0)
    require_pair("augment.crop_scale", cfg.crop_scale, low=0, high=1, low_inclusive=False)
    require_pair("augment.crop_ratio", cfg.crop_ratio, low=0, low_inclusive=False)
    require_range("augment.blur_prob", cfg.blur_prob, low=0, high=1)
    require_pair("augment.blur_sigma", cfg.blur_sigma, low=0, low_inclusive=False)
    require_range("augment.cutout_fraction", cfg.cutout_fraction, low=0, high=1, low_inclusive=False)
    require_pair("augment.noise_std", cfg.noise_std, low=0)
    return cfg
