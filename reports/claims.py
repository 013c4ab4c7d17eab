"""The paper's conclusions as margins between cells, judged on the paper's numbers and on ours.

A check reads cells (axis columns, `value`, `runs`) and either says why it cannot decide (`undecided`) or
returns a `Finding`: the margins that are all positive when the claim holds, and the numbers behind them.
`conclusions` judges every finding twice: on the paper's numbers by sign, and on ours against the seed
noise of the experiment's cells (the rule: reports/noise.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from reports.compare import canon
from reports.noise import Margin, Noise, judge, margin_text, pooled_noise
from reports.published import axis_column


@dataclass(frozen=True)
class Verdict:
    """How a claim fares in one set of cells: holds | fails | within noise | undecided, and why."""
    outcome: str
    evidence: str
    note: str = ""          # "1 seed: noise not measured", "exact tie"

    @property
    def text(self) -> str:
        word = "not enough results" if self.outcome == "undecided" else self.outcome
        return f"{word} ({self.note})" if self.note else word


@dataclass(frozen=True)
class Finding:
    """What a check measured: the claim holds when every margin is positive."""
    margins: tuple[Margin, ...]
    evidence: str


@dataclass(frozen=True)
class Conclusion:
    claim: str
    paper: Verdict
    ours: Verdict
    # What the claim is checked against; None: the artefact's own published cells (the section names them).
    reference: str | None = None


# A check reads cells (axis columns + "value" + "runs") and returns a Finding, or an undecided Verdict.
Check = Callable[[pd.DataFrame], "Finding | Verdict"]


def undecided(why: str) -> Verdict:
    return Verdict("undecided", why)


def judged(result: Finding | Verdict, noise: Noise | None) -> Verdict:
    """A check's result as a verdict; `noise` None for numbers without seeds (the paper's)."""
    if isinstance(result, Verdict):
        return result
    outcome, note = judge(result.margins, noise)
    if noise is None:
        return Verdict(outcome, result.evidence, note)
    margins = ", ".join(margin_text(m, noise) for m in result.margins)
    return Verdict(outcome, f"{result.evidence}; margin {margins}", note)


def cells_of(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """The compare table's axis columns with `column` renamed to "value" and each cell's run count as "runs"
    (1 for the paper's numbers); rows without a number dropped."""
    axes = [c for c in table.columns if c.startswith("axis.")]
    if not len(table):
        return pd.DataFrame(columns=axes + ["value", "runs"])
    runs = table["ours_runs"] if column == "ours_mean" and "ours_runs" in table else 1
    out = table[axes].assign(value=table[column].astype(float), runs=runs)
    return out[out["value"].notna()].reset_index(drop=True)


def noise_of(table: pd.DataFrame) -> Noise:
    """The pooled seed noise of our cells in a compare table."""
    if not len(table) or "ours_std" not in table:
        return pooled_noise([], [])
    return pooled_noise(table["ours_std"].astype(float).tolist(), table["ours_runs"].fillna(0).tolist())


def conclude(claim: str, check: Check, paper: pd.DataFrame, ours: pd.DataFrame, noise: Noise,
             reference: str | None = None) -> Conclusion:
    return Conclusion(claim, judged(check(paper), None), judged(check(ours), noise), reference)


def conclusions(table: pd.DataFrame, checks: Sequence[tuple[str, Check]]) -> list[Conclusion]:
    """Every check run twice: on the paper's numbers (a sanity check of the check) and on ours."""
    paper, ours, noise = cells_of(table, "published"), cells_of(table, "ours_mean"), noise_of(table)
    return [conclude(claim, check, paper, ours, noise) for claim, check in checks]


# ---- margins ----------------------------------------------------------------------------------------------
def contrast(rows: pd.DataFrame, weights: Sequence[float], label: str = "") -> Margin:
    """sum_i w_i * value_i over `rows`, with its standard-error factor sqrt(sum_i w_i^2 / runs_i)."""
    w = np.asarray(weights, dtype=float)
    values, runs = rows["value"].astype(float).to_numpy(), rows["runs"].astype(float).to_numpy()
    return Margin(float(w @ values), float(math.sqrt(np.sum(w ** 2 / runs))), label)


def difference(a: Mapping[str, Any], b: Mapping[str, Any], label: str = "") -> Margin:
    """Cell a minus cell b."""
    return contrast(pd.DataFrame([a, b]), [1.0, -1.0], label)


def slope_weights(cells: pd.DataFrame, along: str) -> np.ndarray:
    """The weights w of `slope`: sum_i w_i * value_i is the least-squares slope over the steps of `along`."""
    position = cells[axis_column(along)].astype(float).rank(method="dense").to_numpy()
    centred = position - position.mean()
    return centred / float(centred @ centred)


def slope(cells: pd.DataFrame, along: str, label: str = "") -> Margin:
    """The least-squares slope of value against the rank of the `along` axis value (1, 2, ...): the change per
    step up the axis, a linear contrast of the cells (positive: larger values of the axis do better)."""
    return contrast(cells, slope_weights(cells, along), label)


def cell_at(cells: pd.DataFrame, **point: Any) -> dict[str, Any] | None:
    """The cell at `point` (axis name -> value; dotted names as head__kind) as a dict, None if absent."""
    mask = pd.Series(True, index=cells.index)
    for axis, wanted in point.items():
        mask &= cells[axis_column(axis.replace("__", "."))].map(canon) == canon(wanted)
    found = cells[mask]
    return found.iloc[0].to_dict() if len(found) else None


def value_at(cells: pd.DataFrame, **point: Any) -> float:
    """The value of the cell at `point`, NaN if absent."""
    cell = cell_at(cells, **point)
    return math.nan if cell is None else float(cell["value"])


def best(cells: pd.DataFrame) -> dict[str, Any]:
    """The cell with the largest value (the first of equals)."""
    return cells.loc[cells["value"].astype(float).idxmax()].to_dict()
