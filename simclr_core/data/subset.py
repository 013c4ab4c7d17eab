"""A fixed, class-balanced choice of examples (data.train_limit / data.test_limit).

The seed is fixed, not the run's seed, so every run that sets the same limit sees the same images. Files such
as CIFAR's are sorted by class, which is why the first N rows are never taken.
"""
from __future__ import annotations

import numpy as np

from simclr_core.validation import ConfigError

SUBSET_SEED = 0


def balanced_subset(labels: np.ndarray, limit: int, seed: int = SUBSET_SEED) -> np.ndarray:
    """Sorted indices of ``limit`` examples, as evenly spread over the classes as their sizes allow.

    Each class is shuffled with ``seed``; examples are then taken in rounds, one per class per round (lower
    labels first within a round), so class counts differ by at most one unless a class runs out.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if limit > len(labels):
        raise ConfigError(f"limit={limit} exceeds the {len(labels)} examples of the split; "
                          f"valid values lie in [1, {len(labels)}]")
    order = np.random.default_rng(seed).permutation(len(labels))
    shuffled = labels[order]
    by_class = np.argsort(shuffled, kind="stable")
    class_start = np.searchsorted(shuffled[by_class], shuffled[by_class])  # first position of each label
    rank = np.empty(len(labels), dtype=np.int64)
    rank[by_class] = np.arange(len(labels)) - class_start  # position of each example within its class
    num_classes = int(labels.max()) + 1 if len(labels) else 1
    chosen = np.argsort(rank * num_classes + shuffled, kind="stable")[:limit]
    return np.sort(order[chosen])
