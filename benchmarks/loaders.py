"""The per-image side of the comparisons: CIFAR-10 pools, PIL copies, map-style datasets and a sampler.

These feed lightly's and torchvision's per-image transforms through a torch DataLoader, the way their
documentation runs them; simclr_core's batched augmentation reads the uint8 pool directly.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from simclr_core.config import DataConfig
from simclr_core.data import ImageSet, load_images


def default_data_dir() -> str | None:
    """$SIMCLR_DATA_DIR/cifar10, else the shared parquet files beside the repository, else None."""
    candidates = [os.environ.get("SIMCLR_DATA_DIR") and Path(os.environ["SIMCLR_DATA_DIR"]) / "cifar10",
                  Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"]
    return next((str(p) for p in candidates if p and Path(p).is_dir()), None)


def cifar_config(data_dir: str | None, size: int = 32, limit: int | None = None) -> DataConfig:
    """CIFAR-10 from ``data_dir`` (all 50,000 training images), or the embedded subset when None.
    A size other than 32 upsamples at decode time (bilinear, antialiased)."""
    image_size = None if size == 32 else size
    if data_dir:
        return DataConfig(dataset="cifar10", data_dir=data_dir, image_size=image_size, train_limit=limit)
    return DataConfig(dataset="cifar10_subset", image_size=image_size, train_limit=limit)


def load_pool(data_dir: str | None, size: int = 32, limit: int | None = None) -> ImageSet:
    """Training images decoded once (and cached on disk by simclr_core.data)."""
    return load_images(cifar_config(data_dir, size, limit), "train")


def pil_images(images: torch.Tensor) -> list:
    """(N, 3, H, W) uint8 -> N PIL images, made once, before any timing."""
    from PIL import Image

    return [Image.fromarray(np.ascontiguousarray(im.permute(1, 2, 0).numpy())) for im in images]


class RandomSubset(Sampler):
    """``count`` indices drawn without replacement from range(population), new ones every epoch."""

    def __init__(self, population: int, count: int, seed: int = 0):
        self.population, self.count = population, count
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self):
        return iter(torch.randperm(self.population, generator=self.generator)[: self.count].tolist())

    def __len__(self) -> int:
        return self.count


class TwoViews(Dataset):
    """Item i -> [view(item i), view(item i)]: each call of ``view`` draws its own parameters."""

    def __init__(self, items, view):
        self.items, self.view = items, view

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return [self.view(self.items[i]), self.view(self.items[i])]


class MultiView(Dataset):
    """Item i -> transform(item i), for transforms that already return a list of views (lightly's)."""

    def __init__(self, items, transform):
        self.items, self.transform = items, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self.transform(self.items[i])
