"""Rank correlations, written out because scipy is not a dependency: Spearman's rho (Pearson's r of the average
ranks) and Kendall's tau-b (concordant minus discordant pairs, corrected for ties).

Both work along the last axis, so that one call scores a single ranking (x of shape (n,)) or every bootstrap
resample at once (x of shape (resamples, n)) against the same y; they are NaN where either side is constant.
Both take optional groups (an artefact setting two methods side by side): then only cells of the same group are
compared, as a stratified rank correlation does.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def average_ranks(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks 1..n along the last axis, ties sharing the mean of the ranks they span ([10, 20, 20, 30] ->
    [1, 2.5, 2.5, 4]): rank_i = #{j: x_j < x_i} + (#{j: x_j = x_i} + 1) / 2."""
    x = np.asarray(values, dtype=float)
    below = (x[..., None, :] < x[..., :, None]).sum(axis=-1)
    equal = (x[..., None, :] == x[..., :, None]).sum(axis=-1)
    return below + (equal + 1) / 2


def _scalar_or_array(result: np.ndarray) -> float | np.ndarray:
    return float(result) if result.ndim == 0 else result


def _centred_ranks(values: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Average ranks along the last axis minus their mean; with `groups`, ranked and centred within each group."""
    if groups is None:
        ranks = average_ranks(values)
        return ranks - ranks.mean(axis=-1, keepdims=True)
    out = np.empty(values.shape)
    for key in dict.fromkeys(groups.tolist()):
        cols = np.flatnonzero(groups == key)
        ranks = average_ranks(values[..., cols])
        out[..., cols] = ranks - ranks.mean(axis=-1, keepdims=True)
    return out


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray,
             groups: Sequence | None = None) -> float | np.ndarray:
    """Spearman's rho along the last axis; NaN where either side is constant or has fewer than 2 values.
    With `groups` (one key per value), stratified: each side is ranked within each group, and rho is the Pearson
    correlation of the within-group centred ranks, so no comparison crosses two groups."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape[-1] < 2:
        return _scalar_or_array(np.full(np.broadcast_shapes(x.shape, y.shape)[:-1], math.nan))
    g = None if groups is None else np.asarray(groups)
    dx, dy = _centred_ranks(x, g), _centred_ranks(y, g)
    denominator = np.sqrt((dx * dx).sum(axis=-1) * (dy * dy).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(denominator > 0, (dx * dy).sum(axis=-1) / denominator, math.nan)
    return _scalar_or_array(rho)


def kendall_tau_b(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray,
                  groups: Sequence | None = None) -> float | np.ndarray:
    """Kendall's tau-b = (concordant - discordant) / sqrt((n0 - ties_x) (n0 - ties_y)), n0 = n(n-1)/2, along
    the last axis; NaN where either side is constant or has fewer than 2 values. With `groups` (one key per
    value), stratified: only the n0 pairs of values in the same group count."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = x.shape[-1]
    i, j = np.triu_indices(n, k=1)
    if groups is not None:
        g = np.asarray(groups)
        same = g[i] == g[j]
        i, j = i[same], j[same]
    if not len(i):
        return _scalar_or_array(np.full(np.broadcast_shapes(x.shape, y.shape)[:-1], math.nan))
    sx, sy = np.sign(x[..., j] - x[..., i]), np.sign(y[..., j] - y[..., i])
    n0 = len(i)
    denominator = np.sqrt((n0 - (sx == 0).sum(axis=-1)) * (n0 - (sy == 0).sum(axis=-1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where(denominator > 0, (sx * sy).sum(axis=-1) / denominator, math.nan)
    return _scalar_or_array(tau)
