"""The paper's published numbers, one CSV row per cell, and which row each declared axis point stands for.

An experiment's CSV (`Published(file=...)`) is an absolute path, or a path looked up, in this order, in the folder
of the file that declares the experiment (so that a table of one's own lies beside one's own declaration), in
$SIMCLR_PUBLISHED_DIR (folders separated by os.pathsep: they add to the package's, they do not replace them),
then reports/published/ in the repository (the paper's CSVs and their README: how each number was read, with what
uncertainty), then ../shared/published/ beside it. A table found nowhere is a ConfigError saying where it looked.
A table needs the columns `value` and `value_type` (reports/published/README.md) besides those `columns` and
`where` name.

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
from simclr_core.validation import ConfigError

PUBLISHED_DIR_ENV = "SIMCLR_PUBLISHED_DIR"
_REPO = Path(__file__).resolve().parent.parent
_CANDIDATES = (_REPO / "reports" / "published", _REPO.parent / "shared" / "published")
_TRUE, _FALSE = {"yes", "true", "1"}, {"no", "false", "0"}
# Columns every table of cells has besides those an experiment's `Published` names (reports/published.py reads them).
REQUIRED_COLUMNS = ("value", "value_type")


def published_folders(declared_in: Path | None = None) -> list[Path]:
    """The folders a relative table path is looked up in, in order: `declared_in` (the folder of the file declaring
    the experiment), those of $SIMCLR_PUBLISHED_DIR, the package's; ConfigError naming a setting that is not a
    folder."""
    setting = os.environ.get(PUBLISHED_DIR_ENV, "")
    extra = [Path(p).expanduser().absolute() for p in setting.split(os.pathsep) if p]
    for folder in extra:
        if not folder.is_dir():
            raise ConfigError(f"${PUBLISHED_DIR_ENV}={setting!r}: {folder} is not a folder; it names folders of "
                              "published CSVs, looked in before the package's own")
    return list(dict.fromkeys([*([declared_in] if declared_in else []), *extra, *_CANDIDATES]))


def table_path(file: str, declared_in: Path | None = None) -> Path:
    """Where published table `file` is: an absolute path as it is, a relative one in the first of
    `published_folders(declared_in)` that holds it; ConfigError saying where it looked."""
    path = Path(file).expanduser()
    candidates = [path] if path.is_absolute() else [folder / path for folder in published_folders(declared_in)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    where = str(path) if path.is_absolute() else ", ".join(str(c.parent) for c in candidates)
    raise ConfigError(f"published table {file!r} not found (looked in {where}); give Published(file=...) a path "
                      f"relative to the folder of the file declaring the experiment, or an absolute one, or set "
                      f"${PUBLISHED_DIR_ENV} to the folder holding it")


def declaring_folder(experiment: Experiment) -> Path | None:
    """The folder of the file declaring `experiment` (None for one the registry does not hold, e.g. in a test)."""
    from registry.discover import declaring_module, get_experiment     # discover imports the declarations

    try:
        if get_experiment(experiment.name) is not experiment:
            return None
        source = getattr(declaring_module(experiment.name), "__file__", None)
    except ConfigError:
        return None
    return Path(source).resolve().parent if source else None


@functools.lru_cache(maxsize=None)
def _read(path: Path) -> tuple[dict[str, str], ...]:
    with open(path, newline="") as f:
        return tuple(csv.DictReader(f))


def load_table(file: str, declared_in: Path | None = None) -> tuple[dict[str, str], ...]:
    """The rows of published table `file` (see `table_path` for where it is looked up)."""
    return _read(table_path(file, declared_in))


def experiment_table(experiment: Experiment) -> tuple[dict[str, str], ...]:
    """The rows of `experiment`'s published table, looked up beside its declaration first."""
    return load_table(experiment.published.file, declaring_folder(experiment))


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
                   metric_where: Mapping[str, str | tuple[str, ...]] | None = None,
                   declared_in: Path | None = None) -> list[dict[str, str]]:
    """The published rows that record axis point `point` (and, with `metric_where`, one metric of it);
    `declared_in`: the folder of the declaring file, where a relative `spec.file` is looked up first."""
    table = load_table(spec.file, declared_in)
    where = {**spec.where, **(metric_where or {})}
    missing = [c for c in dict.fromkeys((*spec.columns, *where, *REQUIRED_COLUMNS)) if table and c not in table[0]]
    if missing:
        raise ConfigError(f"published table {spec.file}: no column(s) {missing}; its columns: {list(table[0])}")
    columns = dict(spec.columns)
    for axis in spec.values:      # a translated axis names its column in `columns`
        if axis not in columns.values():
            raise ConfigError(f"published table {spec.file}: published.values translates axis {axis!r}, which no "
                              "column records")
    return [row for row in table
            if _where_ok(row, where)
            and all(_matches(spec, row, column, axis, point[axis]) for column, axis in columns.items())]


def rows_for_cell(experiment: Experiment, point: Mapping[str, Any], metric: str) -> list[dict[str, str]]:
    """The published rows of cell (`point`, `metric`): empty where the paper reports no such cell."""
    spec = experiment.published
    if spec is None or metric not in experiment.published_metrics:
        return []
    return rows_for_point(spec, point, spec.metrics.get(metric), declaring_folder(experiment))


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
