"""Ours beside the paper's: mean ± std over seeds per axis point, the delta, rank agreement, and the claims.

Everything here is numbers in, numbers out; rounding happens only when reports/render.py formats a table.

When our setting deviates from the paper's (CIFAR-10 and small ResNets instead of ImageNet/ResNet-50), the
values cannot agree; the ordering of the cells can. Agreement is therefore measured as rank correlation over
the cells both sides have: Spearman's rho (Pearson's r of the average ranks) and Kendall's tau-b (concordant
minus discordant pairs, corrected for ties), both written out here because scipy is not a dependency.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

import numpy as np
import pandas as pd

from reports.published import axis_column

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
    counts, normally one per seed. Columns: `axis.<name>`..., *by, ours_mean, ours_std, ours_runs, seeds.
    """
    columns = [axis_column(a) for a in axes] + list(by)
    out_columns = columns + ["ours_mean", "ours_std", "ours_runs", "seeds"]
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
        first = group.iloc[0]
        values = group["value"].astype(float)
        records.append({**{c: first.get(c) for c in columns},
                        "ours_mean": values.mean(), "ours_std": values.std(ddof=1) if len(values) > 1 else math.nan,
                        "ours_runs": len(values),
                        "seeds": tuple(sorted(group["seed"].dropna().astype(int))) if "seed" in group else ()})
    return pd.DataFrame(records, columns=out_columns)


def compare(ours: pd.DataFrame, published: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame:
    """The declared published cells, each with ours beside it: the tidy delta table.

    One row per declared point in the paper's order. Columns: `axis.<name>`..., published, read_as,
    uncertainty, ours_mean, ours_std, ours_runs, delta (ours - published), source. The metric is the
    published one (its `metric` column).
    """
    cells = published[published["declared"]] if "declared" in published else published
    metrics = sorted(set(cells["metric"]) - {""})
    if len(metrics) != 1:
        raise ValueError(f"published cells should hold one metric, found {metrics}")
    mine = aggregate(ours, axes, metrics[0])
    by_key = dict(zip(point_keys(mine, axes), mine.to_dict("records")))
    records = []
    for key, (_, cell) in zip(point_keys(cells, axes), cells.iterrows()):
        match = by_key.get(key, {})
        mean = match.get("ours_mean", math.nan)
        records.append({**{axis_column(a): cell[axis_column(a)] for a in axes},
                        "metric": metrics[0],
                        "published": cell["value"], "read_as": cell["read_as"], "uncertainty": cell["uncertainty"],
                        "ours_mean": mean, "ours_std": match.get("ours_std", math.nan),
                        "ours_runs": int(match.get("ours_runs", 0)),
                        "delta": mean - cell["value"], "source": cell["source"]})
    return pd.DataFrame(records)


# ---- rank agreement ------------------------------------------------------------------------------------
def average_ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties sharing the mean of the ranks they span ([10, 20, 20, 30] -> [1, 2.5, 2.5, 4])."""
    x = np.asarray(values, dtype=float)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    sorted_x = x[order]
    start = 0
    while start < len(x):
        stop = start
        while stop + 1 < len(x) and sorted_x[stop + 1] == sorted_x[start]:
            stop += 1
        ranks[order[start:stop + 1]] = (start + stop) / 2 + 1
        start = stop + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson's correlation of the average ranks; NaN if either side is constant."""
    rx, ry = average_ranks(x), average_ranks(y)
    if len(rx) < 2:
        return math.nan
    dx, dy = rx - rx.mean(), ry - ry.mean()
    denominator = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(dx @ dy) / denominator if denominator else math.nan


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b = (concordant - discordant) / sqrt((n0 - ties_x) (n0 - ties_y)), n0 = n(n-1)/2."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    if n < 2:
        return math.nan
    i, j = np.triu_indices(n, k=1)
    sx, sy = np.sign(x[j] - x[i]), np.sign(y[j] - y[i])
    n0 = n * (n - 1) / 2
    denominator = math.sqrt((n0 - np.sum(sx == 0)) * (n0 - np.sum(sy == 0)))
    return float(np.sum(sx * sy)) / denominator if denominator else math.nan


@dataclass(frozen=True)
class Agreement:
    """Rank agreement between our cells and the paper's, over the cells both have."""
    cells: int
    spearman: float
    kendall: float

    @property
    def measured(self) -> bool:
        return not math.isnan(self.spearman)


def agreement(table: pd.DataFrame, ours: str = "ours_mean", paper: str = "published") -> Agreement:
    """Spearman and Kendall over the rows of `table` where both columns hold a number."""
    both = table[[ours, paper]].astype(float).dropna() if len(table) else table
    if len(both) < MIN_CELLS_FOR_RANKS:
        return Agreement(len(both), math.nan, math.nan)
    return Agreement(len(both), spearman(both[ours], both[paper]), kendall_tau_b(both[ours], both[paper]))


# ---- the paper's conclusions ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """Whether a claim holds in one set of cells (None: not enough cells to tell) and the numbers behind it."""
    holds: bool | None
    evidence: str


@dataclass(frozen=True)
class Conclusion:
    claim: str
    paper: Verdict
    ours: Verdict


# A check reads cells (axis columns + "value") and returns its verdict.
Check = Callable[[pd.DataFrame], Verdict]


def cells_of(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """The compare table's axis columns with `column` renamed to "value", rows without a number dropped."""
    axes = [c for c in table.columns if c.startswith("axis.")]
    out = table[axes + [column]].rename(columns={column: "value"})
    return out[out["value"].astype(float).notna()].reset_index(drop=True) if len(out) else out


def conclusions(table: pd.DataFrame, checks: Sequence[tuple[str, Check]]) -> list[Conclusion]:
    """Every check run twice: on the paper's numbers (a sanity check of the check) and on ours."""
    paper, ours = cells_of(table, "published"), cells_of(table, "ours_mean")
    return [Conclusion(claim, check(paper), check(ours)) for claim, check in checks]


def value_at(cells: pd.DataFrame, **point: Any) -> float:
    """The value of the cell at `point` (axis name -> value; dotted names as head__kind), NaN if absent."""
    mask = pd.Series(True, index=cells.index)
    for axis, wanted in point.items():
        column = axis_column(axis.replace("__", "."))
        mask &= cells[column].map(canon) == canon(wanted)
    found = cells.loc[mask, "value"]
    return float(found.iloc[0]) if len(found) else math.nan
