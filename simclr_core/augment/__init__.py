"""SimCLR's batched data augmentation: the paper's named ops and the two-view module built from them.

    from simclr_core.augment import build_augmentation
    augment = build_augmentation(cfg.augment, image_size=32, mean=CIFAR_MEAN, std=CIFAR_STD)
    view1, view2 = augment(images, generator)     # images: (B, C, H, W) uint8 or float, any device
    small = build_local_views(cfg.augment, 32, CIFAR_MEAN, CIFAR_STD)   # multi-crop's small views, or None

`OPS` holds the paper's vocabulary (crop, cutout, color, sobel, noise, blur, rotate); `functional`
holds the per-op kernels with explicit per-sample parameters; `sampling` draws those parameters.
"""
from simclr_core.augment import functional, sampling
from simclr_core.augment.functional import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    add_gaussian_noise,
    blur_kernel_size,
    color_jitter,
    cutout,
    gaussian_blur,
    normalize,
    resize,
    resized_crop,
    rgb_to_grayscale,
    rotate90,
    sobel,
    to_float_rgb,
)
from simclr_core.augment.multicrop import LocalViews, build_local_views
from simclr_core.augment.ops import OPS, Op
from simclr_core.augment.pipeline import TwoViewAugmentation, build_augmentation, validate_augment_config

__all__ = [
    "OPS", "Op", "TwoViewAugmentation", "build_augmentation", "validate_augment_config",
    "LocalViews", "build_local_views",
    "functional", "sampling",
    "adjust_brightness", "adjust_contrast", "adjust_hue", "adjust_saturation", "add_gaussian_noise",
    "blur_kernel_size", "color_jitter", "cutout", "gaussian_blur", "normalize", "resize",
    "resized_crop", "rgb_to_grayscale", "rotate90", "sobel", "to_float_rgb",
]
