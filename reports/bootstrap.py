"""How sure a rank correlation is, given our seeds: a percentile bootstrap over each cell's seed runs.

One resample draws, for every cell independently, as many of its seed runs as it has, with replacement, and
takes their mean; the statistic (Spearman, Kendall against the paper's fixed values) is recomputed on those
means. The interval is the central LEVEL of RESAMPLES such statistics, from a generator seeded with RNG_SEED,
so a report rebuilt from the same results prints the same interval. A cell with one run is the same in every
resample; when no cell has two runs there is no interval to draw.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

RESAMPLES = 2000
RNG_SEED = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    resamples: int          # drawn
    undefined: int          # resamples in which the statistic is undefined (all cells tie): left out
    level: float = LEVEL


def resample_means(values_per_cell: Sequence[Sequence[float]], resamples: int,
                   rng: np.random.Generator) -> np.ndarray:
    """(resamples, cells): each cell's mean over its seed runs drawn with replacement."""
    means = np.empty((resamples, len(values_per_cell)))
    for j, values in enumerate(values_per_cell):
        v = np.asarray(values, dtype=float)
        means[:, j] = v[rng.integers(0, len(v), size=(resamples, len(v)))].mean(axis=1)
    return means


def percentile_interval(statistics: np.ndarray, level: float = LEVEL) -> Interval:
    """The central `level` of the defined (non-NaN) statistics."""
    defined = statistics[~np.isnan(statistics)]
    if not len(defined):
        return Interval(float("nan"), float("nan"), len(statistics), len(statistics), level)
    low, high = np.quantile(defined, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(low), float(high), len(statistics), len(statistics) - len(defined), level)


def bootstrap_intervals(values_per_cell: Sequence[Sequence[float]], paper: Sequence[float],
                        statistics: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]],
                        resamples: int = RESAMPLES, seed: int = RNG_SEED, level: float = LEVEL
                        ) -> dict[str, Interval] | None:
    """Each statistic's interval over the same resamples; None when no cell has two runs (nothing varies)."""
    if not any(len(v) > 1 for v in values_per_cell):
        return None
    means = resample_means(values_per_cell, resamples, np.random.default_rng(seed))
    y = np.asarray(paper, dtype=float)
    return {name: percentile_interval(np.asarray(f(means, y), dtype=float), level)
            for name, f in statistics.items()}
