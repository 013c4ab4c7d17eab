"""Table 6: "ImageNet accuracies of linear classifiers trained on representations learned with different
self-supervised methods" (Section 6): SimCLR's ResNet-50 at widths 1x, 2x and 4x, top-1 and top-5.

The delta table holds the six cells (width x top-1/top-5). The paper's layout is a table of its own, one row per
architecture, the paper's numbers beside ours; the other methods of Table 6 (numbers the paper quotes, not run here)
are reference rows in a second table. Conclusion, per metric: accuracy grows with width, 1x < 2x < 4x (margins 2x - 1x
and 4x - 2x). At smoke scale kNN top-1 stands in for linear top-1 (reports/build.py) and there is no top-5.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from registry.discover import get_experiment
from registry.published import load_table
from reports import style
from reports.artefacts import Artefact, _lines, _paper_errors, artefact, scale_of
from reports.claims import Conclusion, Finding, Verdict, conclude, difference, noise_of, undecided
from reports.compare import agreement, canon, compare
from reports.published import axis_column, parse_value

EXPERIMENT = "table6_linear_eval"
AXIS = "width"
OURS = "SimCLR (ours)"
KINDS = {"linear_top1": "top-1", "linear_top5": "top-5"}
RANKED = "linear_top1"


def architectures(experiment: str = EXPERIMENT) -> dict[float, str]:
    """Width multiplier -> the paper's architecture text, in the declaration's order."""
    return {float(w): text for w, text in get_experiment(experiment).published.values[AXIS].items()}


# ---- the cells the conclusions read ---------------------------------------------------------------------------
def width_cells(table: pd.DataFrame, side: str) -> pd.DataFrame:
    """One row per cell of `side` ("published" or "ours_mean"): width, metric, value, runs; no-number cells dropped."""
    cells = pd.DataFrame({"width": table[axis_column(AXIS)].map(canon), "metric": table["metric"],
                          "value": table[side].astype(float),
                          "runs": table["ours_runs"] if side == "ours_mean" else 1},
                         columns=["width", "metric", "value", "runs"])
    return cells[cells["value"].notna() & (cells["runs"] > 0)].reset_index(drop=True)


def _at(cells: pd.DataFrame, metric: str, width: float) -> dict[str, Any] | None:
    found = cells[(cells["metric"] == metric) & (cells["width"] == width)]
    return found.iloc[0].to_dict() if len(found) else None


def wider_is_better(metric: str, label: str, widths: tuple[float, ...] = (1.0, 2.0, 4.0)):
    """The check "accuracy grows with width" on `metric`: margins 2x - 1x and 4x - 2x."""
    def check(cells: pd.DataFrame) -> Finding | Verdict:
        found = [_at(cells, metric, w) for w in widths]
        missing = [f"{w:g}x" for w, cell in zip(widths, found) if cell is None]
        if missing:
            return undecided(f"needs {label} at every width; missing {', '.join(missing)}")
        margins = tuple(difference(b, a, f"{wb:g}x - {wa:g}x")
                        for (wa, a), (wb, b) in zip(zip(widths, found), zip(widths[1:], found[1:])))
        return Finding(margins, f"{label}: " + ", ".join(f"{w:g}x {c['value']:.1f}" for w, c in zip(widths, found)))
    return check


def width_conclusions(table: pd.DataFrame, claims: dict[str, tuple[str, str]]) -> list[Conclusion]:
    """One conclusion per metric of `claims` (metric -> (claim, label)), on the paper's cells and on ours."""
    paper, ours, noise = width_cells(table, "published"), width_cells(table, "ours_mean"), noise_of(table)
    return [conclude(claim, wider_is_better(metric, label), paper, ours, noise)
            for metric, (claim, label) in claims.items()]


# ---- views ---------------------------------------------------------------------------------------------------
def paper_layout(table: pd.DataFrame) -> pd.DataFrame:
    """Table 6's rows of SimCLR: architecture, parameters, top-1 and top-5, the paper's beside ours."""
    params = {r["architecture"]: r["params_M"] for r in _table6_rows() if r["method"] == OURS}
    records = []
    for width, name in architectures().items():
        row: dict[str, Any] = {"architecture": name, "params (M)": params.get(name, "")}
        for metric, kind in KINDS.items():
            cell = table[(table[axis_column(AXIS)].map(canon) == width) & (table["metric"] == metric)]
            row[f"{kind} (paper)"] = float(cell["published"].iloc[0]) if len(cell) else math.nan
            row[f"{kind} (ours)"] = float(cell["ours_mean"].iloc[0]) if len(cell) else math.nan
        records.append(row)
    return pd.DataFrame(records)


def _table6_rows() -> list[dict[str, str]]:
    return [r for r in load_table(get_experiment(EXPERIMENT).published.file) if r["table_or_figure"] == "Table 6"]


def other_methods() -> pd.DataFrame:
    """Table 6's other methods as the paper quotes them (reference rows: not run here), in the paper's order."""
    records: dict[tuple[str, str], dict[str, Any]] = {}
    for r in _table6_rows():
        if r["method"] == OURS:
            continue
        row = records.setdefault((r["method"], r["architecture"]), {
            "method": r["method"], "architecture": r["architecture"], "params (M)": r["params_M"],
            "top-1": math.nan, "top-5": math.nan})
        row[KINDS.get(r["metric"], r["metric"])] = parse_value(r["value"])
    return pd.DataFrame(list(records.values()), columns=["method", "architecture", "params (M)", "top-1", "top-5"])


@artefact("tab6", EXPERIMENT)
def tab6(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    """Table 6: linear evaluation of SimCLR's ResNet-50 (1x, 2x, 4x), 1000 epochs."""
    table = compare(ours, published, (AXIS,))
    widths = [int(w) for w in architectures()]
    shown = table.assign(kind=table["metric"].map(KINDS))
    figure, ((left, right),) = style.panels(scale=scale_of(ours), title="Table 6: linear evaluation by width")
    for ax, y, err in ((left, "published", _paper_errors(shown)), (right, "ours_mean", shown["ours_std"])):
        _lines(ax, shown.assign(err=err), axis_column(AXIS), y, "err", "kind", widths,
               "ResNet-50 width multiplier", "linear accuracy (%)", "metric")
    claims = {metric: (f"accuracy grows with width: 1x < 2x < 4x ({kind})", f"linear {kind}")
              for metric, kind in KINDS.items()}
    # Ranks over one metric: across top-1 and top-5 they would agree by construction (top-5 >= top-1).
    return Artefact(figure, table, agreement(table[table["metric"] == RANKED].reset_index(drop=True)),
                    width_conclusions(table, claims),
                    tables={"Table 6 as printed (SimCLR rows), ours beside": paper_layout(table),
                            "Table 6's other methods, as the paper quotes them (reference; not run here)":
                            other_methods()},
                    notes=[f"Rank agreement is over the {KINDS[RANKED]} cells only."])
