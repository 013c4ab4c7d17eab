"""Ours beside the paper's: mean ± std over seeds per axis point, the delta, rank agreement, and the claims.

Everything here is numbers in, numbers out; rounding happens only when reports/render.py formats a table.

When our setting deviates from the paper's (CIFAR-10 and small ResNets instead of ImageNet/ResNet-50), the
values cannot agree; the ordering of the cells can. Agreement is therefore measured as rank correlation over
the cells both sides have (Spearman's rho and Kendall's tau-b: reports/ranks.py), with a bootstrap interval
over our seeds (reports/bootstrap.py). The paper's conclusions are checked in reports/claims.py.
"""
from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass
from typing import Any, Hashable, Sequence

import numpy as np
import pandas as pd

from reports.bootstrap import Interval, bootstrap_intervals
from reports.published import axis_column
from reports.ranks import kendall_tau_b, spearman

# Where a scale does not evaluate the paper's metric (smoke runs kNN only), ours ranks by a stand-in.
STAND_INS = {"linear_top1": ("knn_top1",)}


def with_metric(ours: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, str]:
    """`ours` with `metric`, or, where no run has it, with the rows of its first stand-in present relabelled as
    `metric` (their real name kept in a `stand_in` column, for the figures' titles and for a table that shows the
    stand-in under its own name too) and the other metrics' rows as they are; and the metric actually shown."""
    if ours.empty or (ours["metric"] == metric).any():
        return ours, metric
    for stand_in in STAND_INS.get(metric, ()):
        standing = ours["metric"] == stand_in
        if standing.any():
            relabelled = ours.assign(metric=ours["metric"].where(~standing, metric),
                                     stand_in=pd.Series(stand_in, index=ours.index).where(standing))
            return relabelled, stand_in
    return ours, metric


def under_own_names(ours: pd.DataFrame) -> pd.DataFrame:
    """`ours` with the rows `with_metric` relabelled under their own metric's name again."""
    if "stand_in" not in ours or not len(ours):
        return ours
    return ours.assign(metric=ours["stand_in"].where(ours["stand_in"].notna(), ours["metric"]))

# Fewer matching cells than this and a rank correlation says nothing (two points are always +-1).
MIN_CELLS_FOR_RANKS = 3


# ---- matching axis values ----------------------------------------------------------------------------
def canon(value: Any) -> Hashable:
    """One spelling per axis value, whatever pandas made of it: True/np.bool_ -> True, 2/2.0/np.int64 -> 2.0."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Number):
        return float(value)
    if isinstance(value, (list, tuple)):
        return tuple(canon(v) for v in value)
    return str(value)


def point_keys(frame: pd.DataFrame, axes: Sequence[str]) -> pd.Series:
    """The canonical axis point of every row, as a tuple (missing axis columns read as None)."""
    columns = [frame[axis_column(a)] if axis_column(a) in frame else pd.Series(None, index=frame.index)
               for a in axes]
    keys = [tuple(canon(v) for v in values) for values in zip(*columns)] if axes else [()] * len(frame)
    return pd.Series(keys, index=frame.index, dtype=object)


# ---- ours: mean and std over seeds -------------------------------------------------------------------
def aggregate(ours: pd.DataFrame, axes: Sequence[str], metric: str,
              by: Sequence[str] = ()) -> pd.DataFrame:
    """Mean, sample std (NaN for one run) and run count of `metric` per axis point (and `by` columns).

    `ours` is the long-form results table (registry.store.load_results); every finished run at a point
    counts, normally one per seed (reports/build.py has already left out runs of another config). Columns:
    `axis.<name>`..., *by, ours_mean, ours_std, ours_runs, seeds, ours_values (the runs' values, by seed).
    """
    columns = [axis_column(a) for a in axes] + list(by)
    out_columns = columns + ["ours_mean", "ours_std", "ours_runs", "seeds", "ours_values"]
    if ours.empty or "metric" not in ours:
        return pd.DataFrame(columns=out_columns)
    rows = ours[ours["metric"] == metric]
    if rows.empty:
        return pd.DataFrame(columns=out_columns)
    extra = zip(*(rows[c] for c in by)) if by else ((),) * len(rows)
    keys = [point + tuple(canon(v) for v in more) for point, more in zip(point_keys(rows, axes), extra)]
    rows = rows.assign(_key=pd.Series(keys, index=rows.index, dtype=object))
    records = []
    for _, group in rows.groupby("_key", sort=False):
        if "seed" in group:
            group = group.sort_values("seed", kind="stable")
        first = group.iloc[0]
        values = group["value"].astype(float)
        records.append({**{c: first.get(c) for c in columns},
                        "ours_mean": values.mean(), "ours_std": values.std(ddof=1) if len(values) > 1 else math.nan,
                        "ours_runs": len(values),
                        "seeds": tuple(sorted(group["seed"].dropna().astype(int))) if "seed" in group else (),
                        "ours_values": tuple(values)})
    return pd.DataFrame(records, columns=out_columns)


def compare(ours: pd.DataFrame, published: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame:
    """The declared published cells, each with ours beside it: the tidy delta table.

    One row per declared cell in the paper's order. Columns: `axis.<name>`..., metric, published, read_as,
    uncertainty, ours_mean, ours_std, ours_runs, ours_values, delta (ours - published), source. A cell's metric
    is our final.json key for it: `cell_metric` where `published` has that column (reports/published.py's
    published_cells: one row per (point, metric) for tables of several metrics), else the CSV's `metric`.
    """
    cells = published[published["declared"]] if "declared" in published else published
    if "cell_metric" in cells and len(cells):
        return pd.concat([_compare_metric(ours, part, axes, metric)
                          for metric, part in cells.groupby("cell_metric", sort=False)], ignore_index=True)
    metrics = sorted(set(cells["metric"]) - {""}) if "metric" in cells else []
    if len(metrics) != 1:
        raise ValueError(f"published cells should hold one metric, found {metrics}")
    return _compare_metric(ours, cells, axes, metrics[0])


def _compare_metric(ours: pd.DataFrame, cells: pd.DataFrame, axes: Sequence[str], metric: str) -> pd.DataFrame:
    mine = aggregate(ours, axes, metric)
    by_key = dict(zip(point_keys(mine, axes), mine.to_dict("records")))
    records = []
    for key, (_, cell) in zip(point_keys(cells, axes), cells.iterrows()):
        match = by_key.get(key, {})
        mean = match.get("ours_mean", math.nan)
        records.append({**{axis_column(a): cell[axis_column(a)] for a in axes},
                        "metric": metric,
                        "published": cell["value"], "read_as": cell["read_as"], "uncertainty": cell["uncertainty"],
                        "ours_mean": mean, "ours_std": match.get("ours_std", math.nan),
                        "ours_runs": int(match.get("ours_runs", 0)), "ours_values": match.get("ours_values", ()),
                        "delta": mean - cell["value"], "source": cell["source"]})
    return pd.DataFrame(records)


# ---- rank agreement ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Agreement:
    """Rank agreement between our cells and the paper's, over the cells both have, with a bootstrap interval
    over our seeds (reports/bootstrap.py) where some cell has two or more runs."""
    cells: int
    spearman: float
    kendall: float
    # Why there is no correlation ("all 6 of our cells tie (24.0)"); "" when there is one.
    why_not: str = ""
    # {"spearman": Interval, "kendall": Interval}; None without an interval (`seeds` says why).
    intervals: dict[str, Interval] | None = None
    seeds: str = ""         # "3 seeds per cell", "1-3 seeds per cell", "1 seed: no interval"
    # What the cells were ranked within ("method": only cells of the same method compared); "" for all together.
    within: str = ""

    @property
    def measured(self) -> bool:
        return not math.isnan(self.spearman)


def _seeds_note(runs: Sequence[int]) -> str:
    low, high = min(runs), max(runs)
    if high <= 1:
        return "1 seed: no interval"
    return f"{low} seeds per cell" if low == high else f"{low}-{high} seeds per cell"


def agreement(table: pd.DataFrame, ours: str = "ours_mean", paper: str = "published",
              values: str = "ours_values", within: str | None = None) -> Agreement:
    """Spearman and Kendall over the rows of `table` where both columns hold a number; `values` (each cell's
    seed runs) gives the bootstrap interval. `within`, an axis (e.g. "method"): the cells are ranked within
    each of its values only (stratified), so cells on two different measures are never compared."""
    if not len(table):
        return Agreement(0, math.nan, math.nan, "not measured: no cell has both our number and the paper's")
    mask = table[ours].astype(float).notna() & table[paper].astype(float).notna()
    both = table[mask]
    x, y = both[ours].astype(float).to_numpy(), both[paper].astype(float).to_numpy()
    n = len(both)
    if n == 0:
        return Agreement(0, math.nan, math.nan, "not measured: no cell has both our number and the paper's")
    if n < MIN_CELLS_FOR_RANKS:
        return Agreement(n, math.nan, math.nan, f"not measured: {n} cell(s) with both numbers (at least "
                                                f"{MIN_CELLS_FOR_RANKS} are needed)")
    for side, v in (("our", x), ("the paper's", y)):
        if np.all(v == v[0]):
            return Agreement(n, math.nan, math.nan,
                             f"undefined: all {n} of {side} cells tie ({v[0]:g}), so they have no ranking")
    groups = None if within is None else both[axis_column(within)].map(str).to_numpy()
    statistics = {"spearman": functools.partial(spearman, groups=groups),
                  "kendall": functools.partial(kendall_tau_b, groups=groups)}
    rho, tau = (float(f(x, y)) for f in statistics.values())
    if math.isnan(tau):
        return Agreement(n, math.nan, math.nan, f"undefined: within each {within}, one side's cells tie or "
                                                f"stand alone, so they have no ranking", within=within or "")
    per_cell = [tuple(v) for v in both[values]] if values in both else [(m,) for m in x]
    intervals = bootstrap_intervals(per_cell, y, statistics)
    return Agreement(n, rho, tau, "", intervals, _seeds_note([len(v) for v in per_cell]), within or "")
