"""What a planned run costs, before any data is read: steps, views seen, and hours on the scale's hardware.

Cost model: one training step processes 2 x batch_size views (forward + backward), plus multi-crop's small
views, each costing (its side / the full side)^2 of a full-size one; evaluation extracts
features once per protocol (one forward pass over train + test, counted as 1/3 of a training view).
A view's cost relative to ResNet-50 (1x) at 224 px is the encoder's forward FLOPs ratio: torchvision's
published GFLOPs per 224 px image, times width^2, times the spatial area after the stem (the CIFAR stem
keeps full resolution: a 32 px CIFAR view costs as much as a 128 px ImageNet-stem view). Small models
on CPUs are overhead-bound, so treat CPU figures as rough until calibrated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from simclr_core.config import RunConfig

# Training-split sizes, so that plans need no data on disk.
TRAIN_IMAGES = {"cifar10_subset": 5_000, "cifar10": 50_000, "cifar100": 50_000, "stl10": 5_000,
                "imagenet": 1_281_167}
TEST_IMAGES = {"cifar10_subset": 1_000, "cifar10": 10_000, "cifar100": 10_000, "stl10": 8_000,
               "imagenet": 50_000}
NATIVE_IMAGE_SIZE = {"cifar10_subset": 32, "cifar10": 32, "cifar100": 32, "stl10": 96, "imagenet": 224}
# Forward GFLOPs of one 224 px image at width 1 (torchvision model cards: ResNet*_Weights.IMAGENET1K_V1).
ENCODER_GFLOPS_224 = {"resnet18": 1.81, "resnet34": 3.66, "resnet50": 4.09, "resnet101": 7.80, "resnet152": 11.51}
CIFAR_STEM_MAX_IMAGE_SIZE = 64

# Views per second that one GPU trains for ResNet-50 (1x) at 224 px: measured on one NVIDIA H200 with this
# code (bf16 autocast, channels_last, eager, LARS, batch 256, the step on pre-made views): 2,429 images/s,
# i.e. 4,858 views/s. Data loading is not included. Other GPUs: `registry run --dry-run --gpu-images-per-s R`
# with R the images/s of that same step on yours (benchmarks/bench_data.py prints it).
PAPER_GPU_VIEWS_PER_S = 4_858.0
PAPER_GPU_RATE_SOURCE = "measured on one NVIDIA H200: ResNet-50 1x, 224 px, bf16, batch 256, pre-made views"
# Views per second on the 2-core reference CPU (AVX-512 bf16) for ResNet-18 x0.25 at 32 px (CIFAR stem),
# batch 256, bf16 autocast + channels_last, whole pipeline (augmentation + step): measured 2026-11-22 in the
# metrics.jsonl windows of a cpu-scale temperature_norm run while nothing else ran: 390-447 images/s, i.e.
# 780-890 views/s. Windows measured while other jobs shared the 2 cores fell to 44-170 images/s.
CPU_REFERENCE_VIEWS_PER_S = 850.0
_CPU_REFERENCE_COST = ENCODER_GFLOPS_224["resnet18"] * 0.25 ** 2 * (4 * 32 / 224) ** 2 / ENCODER_GFLOPS_224["resnet50"]
VIEWS_PER_S = {"gpu": PAPER_GPU_VIEWS_PER_S, "cpu": CPU_REFERENCE_VIEWS_PER_S * _CPU_REFERENCE_COST}
# (for "cpu" this is the rate of a ResNet-50 1x @ 224 px equivalent view, so the same cost model applies)


@dataclass(frozen=True)
class Estimate:
    steps: int
    views: int
    # Cost of one view relative to ResNet-50 (1x) at 224 px.
    relative_cost: float
    hours: float


def relative_view_cost(cfg: RunConfig) -> float:
    """Forward FLOPs of one view of `cfg`'s encoder, relative to ResNet-50 (1x) at 224 px."""
    size = cfg.data.image_size or NATIVE_IMAGE_SIZE.get(cfg.data.dataset, 224)
    stem = cfg.encoder.stem
    if stem == "auto":
        stem = "cifar" if size <= CIFAR_STEM_MAX_IMAGE_SIZE else "imagenet"
    effective = 4 * size if stem == "cifar" else size      # the ImageNet stem downsamples by 4
    gflops = ENCODER_GFLOPS_224.get(cfg.encoder.name, ENCODER_GFLOPS_224["resnet50"])
    return gflops * cfg.encoder.width ** 2 * (effective / 224) ** 2 / ENCODER_GFLOPS_224["resnet50"]


def estimate(cfg: RunConfig, hardware: str, views_per_s: float | None = None) -> Estimate:
    """Steps, training views and hours of one run of `cfg` on one device of `hardware` ("cpu" or "gpu");
    `views_per_s`: that device's ResNet-50-1x-224px-equivalent training views per second, if not the default."""
    train = TRAIN_IMAGES.get(cfg.data.dataset, TRAIN_IMAGES["imagenet"])
    test = TEST_IMAGES.get(cfg.data.dataset, TEST_IMAGES["imagenet"])
    if cfg.data.train_limit:
        train = min(train, cfg.data.train_limit)
    if cfg.data.test_limit:
        test = min(test, cfg.data.test_limit)
    total_steps = max(1, round(cfg.epochs * (train // cfg.batch_size)))   # as train.total_steps_for
    steps = min(total_steps, cfg.max_steps or total_steps)
    views = (2 + cfg.augment.local_crops) * cfg.batch_size * steps
    eval_views = len(cfg.eval.protocols) * (train + test) / 3
    cost = relative_view_cost(cfg)
    rate = views_per_s or VIEWS_PER_S[hardware]
    hours = (train_view_equivalents(cfg) * cfg.batch_size * steps + eval_views) * cost / rate / 3600
    return Estimate(steps, views, cost, hours)


def train_view_equivalents(cfg: RunConfig) -> float:
    """Full-size views' worth of compute per training image: the two views plus the small views by area."""
    size = cfg.data.image_size or NATIVE_IMAGE_SIZE.get(cfg.data.dataset, 224)
    return 2 + cfg.augment.local_crops * (cfg.augment.local_crop_side(size) / size) ** 2


def format_hours(hours: float) -> str:
    if hours < 1 / 60:
        return f"{hours * 3600:.0f} s"
    if hours < 1:
        return f"{hours * 60:.1f} min"
    return f"{hours:,.1f} h" if math.isfinite(hours) else "?"
