"""The paper's numbers as data: one row per declared axis point, with how each number was obtained.

The CSVs under reports/published/ (their README.md names every source) say in `value_type` how a cell
was read. Here that text becomes two columns a report can reason with:

    read_as       "printed"         the number is printed in a table, a figure or the text (exact);
                  "read_from_plot"  measured off a plot image (approximate);
                  "missing"         the paper gives no number for this cell (value is NaN).
    uncertainty   for a plot reading, the stated error bound ("approx_digitized (+/-0.4)" -> 0.4), NaN when
                  none is stated; for a printed number, half a unit of its last printed digit (56.3 -> 0.05),
                  the rounding the paper itself applied.

Which CSV row records which axis point is registry/published.py's rule (`rows_for_point`), used here
unchanged, so the report and `python -m registry validate` can never disagree about a cell.
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping

import pandas as pd

from registry.declare import Experiment
from registry.published import experiment_table, rows_for_cell

READ_AS = ("printed", "read_from_plot", "missing")
# Kept from each CSV row beside the parsed value (the files share these columns).
KEPT = ("metric", "value_type", "table_or_figure", "source", "notes")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")
_BOUND = re.compile(r"\+/-\s*(\d+\.?\d*)")


def axis_column(axis: str) -> str:
    """Axis `head.kind` -> column `axis.head.kind`, as registry.store.load_results names it."""
    return f"axis.{axis}"


def read_as(value_type: str) -> tuple[str, float]:
    """(read_as, uncertainty of a plot reading) from a CSV `value_type`; ValueError for an unknown kind.

    >>> read_as("approx_digitized (+/-0.4)")
    ('read_from_plot', 0.4)
    """
    text = value_type.strip().lower()
    if text.startswith("missing"):
        return "missing", math.nan
    if text.startswith("approx") or "digitized" in text:
        bound = _BOUND.search(text)
        return "read_from_plot", float(bound.group(1)) if bound else math.nan
    if text.startswith("exact"):
        return "printed", math.nan
    raise ValueError(f"value_type {value_type!r} is none of the known kinds: 'exact...' (printed), "
                     "'approx...'/'...digitized...' (read off a plot), 'MISSING...'")


def parse_value(text: str) -> float:
    """The number in a CSV value cell ("56.3", ">10", "+3"); NaN when there is none ("n/a", "")."""
    match = _NUMBER.search(text or "")
    return float(match.group(0)) if match else math.nan


def rounding_half_unit(text: str) -> float:
    """Half a unit of the last printed digit: "56.3" -> 0.05, "100" -> 0.5."""
    match = _NUMBER.search(text or "")
    if not match:
        return math.nan
    digits = match.group(0)
    decimals = len(digits.partition(".")[2])
    return 0.5 * 10.0 ** -decimals


def describe_row(row: Mapping[str, str]) -> dict[str, Any]:
    """One CSV row -> value, value_text, read_as, uncertainty and the kept provenance columns."""
    kind, bound = read_as(row.get("value_type", ""))
    text = row.get("value", "")
    value = math.nan if kind == "missing" else parse_value(text)
    uncertainty = rounding_half_unit(text) if kind == "printed" else bound
    return {"value": value, "value_text": text, "read_as": kind, "uncertainty": uncertainty,
            **{k: row.get(k, "") for k in KEPT}}


def published_for(experiment: Experiment, extra_where: Mapping[str, str | tuple[str, ...]] | None = None,
                  metric: str | None = None) -> pd.DataFrame:
    """The experiment's published cells of `metric` (default: the experiment's ranking metric), one row per
    declared axis point, in declaration order.

    Columns: `axis.<name>` per axis (the declared values, typed as declared), `declared` (True), value,
    value_text, read_as, uncertainty, metric, value_type, table_or_figure, source, notes. A point the CSV
    does not record gets read_as "missing"; a point matching several rows is a ValueError.

    `extra_where` adds further rows of the same CSV that are not axis points (Figure 5's printed row
    averages): the CSV's own text goes in the axis columns and `declared` is False.
    """
    spec = experiment.published
    axes = experiment.axes.names
    metric = metric or experiment.metric
    rows: list[dict[str, Any]] = []
    for point in experiment.points():
        found = rows_for_cell(experiment, point, metric)
        if len(found) > 1:
            raise ValueError(f"{experiment.name}: point {point}, metric {metric} matches {len(found)} rows of "
                             f"{spec.file}")
        cell = describe_row(found[0]) if found else {
            "value": math.nan, "value_text": "", "read_as": "missing", "uncertainty": math.nan,
            **{k: "" for k in KEPT}}
        rows.append({**{axis_column(a): point[a] for a in axes}, "declared": True, **cell})
    if extra_where and spec is not None:
        for row in experiment_table(experiment):
            if all(row.get(c) in ((v,) if isinstance(v, str) else v) for c, v in extra_where.items()):
                axis_values = {axis_column(axis): row[column] for column, axis in spec.columns.items()}
                rows.append({**axis_values, "declared": False, **describe_row(row)})
    return pd.DataFrame(rows)


def published_cells(experiment: Experiment, extra_where: Mapping[str, str | tuple[str, ...]] | None = None
                    ) -> pd.DataFrame:
    """`published_for` over every metric the paper reports for `experiment`, one row per (declared point, metric),
    with `cell_metric` naming our final.json key for the row (the CSV's own `metric` column may name it otherwise:
    Table 7's "finetune_top5" at 1% is our finetune_top5_1pct). Empty, with the axis columns, for an experiment
    of one's own."""
    frames = [published_for(experiment, extra_where if i == 0 else None, metric).assign(cell_metric=metric)
              for i, metric in enumerate(experiment.published_metrics)]
    if not frames:
        return pd.DataFrame(columns=[axis_column(a) for a in experiment.axes.names]
                            + ["declared", "value", "value_text", "read_as", "uncertainty", *KEPT, "cell_metric"])
    return pd.concat(frames, ignore_index=True)
