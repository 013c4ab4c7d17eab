"""The paper's published numbers, one CSV row per cell, and which row each declared axis point stands for.

The CSVs (and their README: how each number was read, with what uncertainty) are looked up in
$SIMCLR_PUBLISHED_DIR, then reports/published/ in the repository, then ../shared/published/ beside it.

A CSV cell matches an axis value when they are the same after one normalisation, stated here once:
  * booleans: "yes"/"true"/"1" is True, "no"/"false"/"0" is False;
  * numbers: compared as floats, a trailing "x" dropped ("2x" == 2, "0.125" == 0.125, "100" == 100.0);
  * text: equal, or equal to the cell's first word before " (" ("nonlinear (2-layer MLP, ReLU)" == "nonlinear").
"""
from __future__ import annotations

import csv
import functools
import os
from pathlib import Path
from typing import Any, Mapping

from registry.declare import Experiment, Published

PUBLISHED_DIR_ENV = "SIMCLR_PUBLISHED_DIR"
_REPO = Path(__file__).resolve().parent.parent
_CANDIDATES = (_REPO / "reports" / "published", _REPO.parent / "shared" / "published")
_TRUE, _FALSE = {"yes", "true", "1"}, {"no", "false", "0"}


def published_dir() -> Path:
    """The folder holding the published CSVs; FileNotFoundError saying where it looked."""
    env = os.environ.get(PUBLISHED_DIR_ENV)
    candidates = (Path(env),) if env else _CANDIDATES
    for path in candidates:
        if path.is_dir():
            return path
    raise FileNotFoundError(f"no published-numbers folder; looked in {', '.join(map(str, candidates))} "
                            f"(set ${PUBLISHED_DIR_ENV})")


@functools.lru_cache(maxsize=None)
def _read(path: Path) -> tuple[dict[str, str], ...]:
    with open(path, newline="") as f:
        return tuple(csv.DictReader(f))


def load_table(file: str) -> tuple[dict[str, str], ...]:
    path = published_dir() / file
    if not path.is_file():
        raise FileNotFoundError(f"published table {file!r} not found in {path.parent}")
    return _read(path)


def cell_matches(cell: str, value: Any) -> bool:
    """Whether CSV text `cell` records axis value `value` (see the module docstring)."""
    text = cell.strip()
    if isinstance(value, bool):
        return text.lower() in (_TRUE if value else _FALSE)
    if isinstance(value, (int, float)):
        try:
            return float(text.removesuffix("x")) == float(value)
        except ValueError:
            return False
    value = str(value)
    return text == value or text.split(" (")[0] == value


def _where_ok(row: Mapping[str, str], where: Mapping[str, str | tuple[str, ...]]) -> bool:
    for column, accepted in where.items():
        options = (accepted,) if isinstance(accepted, str) else accepted
        if row.get(column) not in options:
            return False
    return True


def _matches(spec: Published, row: Mapping[str, str], column: str, axis: str, value: Any) -> bool:
    text = spec.values.get(axis, {}).get(value) if axis in spec.values else None
    if axis in spec.values and text is None:
        return False      # a value the translation does not name is not in the paper
    return row[column].strip() == text if text is not None else cell_matches(row[column], value)


def rows_for_point(spec: Published, point: Mapping[str, Any],
                   metric_where: Mapping[str, str | tuple[str, ...]] | None = None) -> list[dict[str, str]]:
    """The published rows that record axis point `point` (and, with `metric_where`, one metric of it)."""
    table = load_table(spec.file)
    where = {**spec.where, **(metric_where or {})}
    missing = [c for c in (*spec.columns, *where) if table and c not in table[0]]
    if missing:
        raise KeyError(f"{spec.file} has no column(s) {missing}; columns: {list(table[0])}")
    columns = dict(spec.columns)
    for axis in spec.values:      # a translated axis names its column in `columns`
        if axis not in columns.values():
            raise KeyError(f"{spec.file}: published.values translates axis {axis!r}, which no column records")
    return [row for row in table
            if _where_ok(row, where)
            and all(_matches(spec, row, column, axis, point[axis]) for column, axis in columns.items())]


def rows_for_cell(experiment: Experiment, point: Mapping[str, Any], metric: str) -> list[dict[str, str]]:
    """The published rows of cell (`point`, `metric`): empty where the paper reports no such cell."""
    spec = experiment.published
    if spec is None or metric not in experiment.published_metrics:
        return []
    return rows_for_point(spec, point, spec.metrics.get(metric))


def published_cells(experiment: Experiment) -> list[tuple[dict[str, Any], str, list[dict[str, str]]]]:
    """(axis point, metric, matching rows) for every declared point and every metric the paper reports."""
    return [(point, metric, rows_for_cell(experiment, point, metric))
            for point in experiment.points() for metric in experiment.published_metrics]


def unmatched_points(experiment: Experiment) -> list[str]:
    """One message per cell that matches more than one published row; empty when all is well or nothing is
    published. (A cell matching none is one the paper does not report: the report shows it as missing.)"""
    problems = []
    for point, metric, rows in published_cells(experiment):
        if len(rows) > 1:
            problems.append(f"{experiment.name}: point {point}, metric {metric} matches {len(rows)} rows of "
                            f"{experiment.published.file} (expected at most 1)")
    return problems
