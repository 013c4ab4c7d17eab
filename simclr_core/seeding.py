"""Every random draw of a run as a pure function of integers: (seed, epoch) for the data order, (seed, step,
rank) for a step's augmentation. A resumed run draws what an uninterrupted one would have."""
from __future__ import annotations

import torch


def mix(*values: int) -> int:
    """A 63-bit seed from integers (splitmix64-style), so nearby (seed, step, rank) give unrelated streams."""
    x = 0x9E3779B97F4A7C15
    for v in values:
        x = (x ^ (v & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x = (x ^ (x >> 31)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
    return x >> 1


def epoch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The order of n training items in epoch `epoch`."""
    generator = torch.Generator().manual_seed(mix(seed, epoch, 0x5EED))
    return torch.randperm(n, generator=generator)


def step_seed(seed: int, step: int, rank: int) -> int:
    """The seed of the augmentation draws of process `rank` at step `step`."""
    return mix(seed, step, rank)
