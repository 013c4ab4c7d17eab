"""Table 3: "accuracy of training additional MLPs on different representations to predict the transformation
applied" (Section 4.2), h against g(h), beside the random guess.

The paper reports one pretraining per task: colour vs grayscale after the default crop + colour pretraining,
and rotation, noise and Sobel each after a pretraining that added that transformation. Those 8 cells (task x
{h, g(h)}) are the delta table; every run of ours probes all four tasks, so ours also fills the rest of the
pretraining x task matrix, shown as a table of its own. The conclusions are read on the paper's cells: h
predicts each transformation better than g(h) (g(h) lost information), and h stays above random guess.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd
import seaborn as sns

from registry.discover import get_experiment
from registry.published import rows_for_cell
from reports import style
from reports.artefacts import Artefact, artefact, scale_of
from reports.claims import Conclusion, Finding, Verdict, conclude, contrast, difference, noise_of, undecided
from reports.compare import agreement, aggregate, canon, compare, point_keys
from reports.published import axis_column, parse_value

from matplotlib.axes import Axes  # noqa: E402  (after reports.style chose the Agg backend)

EXPERIMENT = "transform_prediction"
AXIS = "added_transform"
REPRESENTATIONS = {"h": "h", "gh": "g(h)"}
GUESS = "random_guess"


def metric_of(task: str, representation: str) -> str:
    return f"transform_{task}_{representation}"


def tasks() -> dict[str, str]:
    """Probe task -> the paper's "what to predict" row, in the paper's order (from the declaration)."""
    spec = get_experiment(EXPERIMENT).published
    found = {}
    for metric, where in spec.metrics.items():
        found.setdefault(metric.removeprefix("transform_").rpartition("_")[0], where["what_to_predict"])
    return found


def diagonal(published: pd.DataFrame, tasks: Sequence[str]) -> dict[str, Any]:
    """Task -> the pretraining (axis value) of the paper's cell for it; tasks without one are left out."""
    if "cell_metric" not in published:
        raise ValueError("Table 3's published cells span several metrics: pass reports.published.published_cells"
                         "(experiment), whose `cell_metric` column names our metric for each row")
    found = published[published["read_as"] != "missing"]
    points = dict(zip(found["cell_metric"], found[axis_column(AXIS)]))
    return {t: points[metric_of(t, "h")] for t in tasks if metric_of(t, "h") in points}


def paper_guess(point: Any, task: str) -> float:
    """The paper's random guess for `task` (the CSV's random_guess column of its cell)."""
    rows = rows_for_cell(get_experiment(EXPERIMENT), {AXIS: point}, metric_of(task, "h"))
    return parse_value(rows[0]["random_guess"]) if rows else math.nan


def _at(frame: pd.DataFrame, point: Any) -> dict[str, Any]:
    match = frame[point_keys(frame, (AXIS,)) == (canon(point),)]
    return match.iloc[0].to_dict() if len(match) else {}


# ---- the cells the conclusions read ---------------------------------------------------------------------------
def check_cells(table: pd.DataFrame, guesses: dict[str, dict[str, Any]], side: str) -> pd.DataFrame:
    """One row per (task, representation) of `side` ("published" or "ours_mean"): task, representation (h, gh,
    random_guess), value, runs; cells without a number dropped. `guesses`: task -> {value, runs}."""
    records = []
    for _, row in table.iterrows():
        task, _, representation = row["metric"].removeprefix("transform_").rpartition("_")
        runs = row["ours_runs"] if side == "ours_mean" else 1
        records.append({"task": task, "representation": representation, "value": float(row[side]), "runs": runs})
    records += [{"task": task, "representation": GUESS, **guess} for task, guess in guesses.items()]
    cells = pd.DataFrame(records, columns=["task", "representation", "value", "runs"])
    return cells[cells["value"].notna() & (cells["runs"] > 0)].reset_index(drop=True)


def _cell(cells: pd.DataFrame, task: str, representation: str) -> dict[str, Any] | None:
    found = cells[(cells["task"] == task) & (cells["representation"] == representation)]
    return found.iloc[0].to_dict() if len(found) else None


def h_beats_gh(task: str, label: str):
    """The check "h predicts `task` better than g(h)": margin h - g(h)."""
    def check(cells: pd.DataFrame) -> Finding | Verdict:
        h, gh = _cell(cells, task, "h"), _cell(cells, task, "gh")
        if h is None or gh is None:
            return undecided(f"needs h and g(h) on {label}")
        return Finding((difference(h, gh, "h - g(h)"),), f"{label}: h {h['value']:.1f} vs g(h) {gh['value']:.1f}")
    return check


def _missing(cells: pd.DataFrame, names: Sequence[str], representations: Sequence[str]) -> Verdict | None:
    """An undecided verdict naming the absent cells, None when every task has every representation."""
    missing = [f"{t} {r}" for t in names for r in representations if _cell(cells, t, r) is None]
    return undecided("needs every task; missing " + ", ".join(missing)) if missing else None


def mean_gap(names: Sequence[str]):
    """The check "h beats g(h) on average over the tasks": margin mean(h) - mean(g(h))."""
    def check(cells: pd.DataFrame) -> Finding | Verdict:
        missing = _missing(cells, names, ("h", "gh"))
        if missing is not None:
            return missing
        rows = pd.DataFrame([_cell(cells, t, r) for r in ("h", "gh") for t in names])
        weights = [1 / len(names)] * len(names) + [-1 / len(names)] * len(names)
        margin = contrast(rows, weights, "mean h - mean g(h)")
        return Finding((margin,), f"mean over {len(names)} tasks: h {rows['value'].iloc[:len(names)].mean():.1f} "
                                  f"vs g(h) {rows['value'].iloc[len(names):].mean():.1f}")
    return check


def h_above_guess(names: dict[str, str]):
    """The check "h predicts every task above random guess": margins h - random guess per task."""
    def check(cells: pd.DataFrame) -> Finding | Verdict:
        missing = _missing(cells, list(names), ("h", GUESS))
        if missing is not None:
            return missing
        pairs = {t: (_cell(cells, t, "h"), _cell(cells, t, GUESS)) for t in names}
        return Finding(tuple(difference(h, g, f"{t}:") for t, (h, g) in pairs.items()),
                       "; ".join(f"{names[t]}: h {h['value']:.1f} vs random {g['value']:.1f}"
                                 for t, (h, g) in pairs.items()))
    return check


def table3_conclusions(table: pd.DataFrame, paper_guesses: dict, our_guesses: dict,
                       names: dict[str, str]) -> list[Conclusion]:
    checks = [(f"g(h) loses information about {label}: accuracy on h exceeds g(h)", h_beats_gh(t, label))
              for t, label in names.items()]
    checks += [("g(h) loses information: accuracy on h exceeds g(h), averaged over the four tasks",
                mean_gap(list(names))),
               ("h keeps the transformation: h predicts every task above random guess", h_above_guess(names))]
    paper, ours = check_cells(table, paper_guesses, "published"), check_cells(table, our_guesses, "ours_mean")
    noise = noise_of(table)
    return [conclude(claim, check, paper, ours, noise) for claim, check in checks]


# ---- views ---------------------------------------------------------------------------------------------------
def paper_layout(table: pd.DataFrame, diag: dict[str, Any], paper_guesses: dict, our_guesses: dict,
                 names: dict[str, str]) -> pd.DataFrame:
    """Table 3's layout: one row per task, random guess, h and g(h), the paper's beside ours."""
    records = []
    for task, label in names.items():
        row = {"what to predict": label, "added in pretraining": diag.get(task, "—"),
               "random guess (paper)": paper_guesses.get(task, {}).get("value", math.nan),
               "random guess (ours)": our_guesses.get(task, {}).get("value", math.nan)}
        for rep, shown in REPRESENTATIONS.items():
            row[f"{shown} (paper)"] = _of(table, metric_of(task, rep), "published")
            row[f"{shown} (ours)"] = _of(table, metric_of(task, rep), "ours_mean")
        records.append(row)
    return pd.DataFrame(records)


def _of(table: pd.DataFrame, metric: str, column: str) -> float:
    """`column` of the delta table's row of `metric`, NaN if it has none."""
    found = table.loc[table["metric"] == metric, column]
    return float(found.iloc[0]) if len(found) else math.nan


def full_matrix(ours: pd.DataFrame, points: Sequence[Any], names: dict[str, str]) -> pd.DataFrame:
    """Ours for every pretraining x task: one row per pretraining, columns task h / g(h) (mean over seeds)."""
    out = pd.DataFrame({"added in pretraining": list(points)})
    for task in names:
        for rep, shown in REPRESENTATIONS.items():
            mine = aggregate(ours, (AXIS,), metric_of(task, rep))
            out[f"{task} {shown}"] = [float(_at(mine, p).get("ours_mean", math.nan)) for p in points]
    return out


def _grouped(ax: Axes, labels: Sequence[str], h: Sequence[float], h_err: Sequence[float], gh: Sequence[float],
             gh_err: Sequence[float], guess: Sequence[float]) -> None:
    """Per task, a bar for h and one for g(h), and the random guess as a black line across both."""
    values = np.asarray([*h, *gh], dtype=float)
    if np.isnan(values).all():
        style.mark_empty(ax)
        return
    x, width = np.arange(len(labels)), 0.38
    colors = sns.color_palette("colorblind", 2)
    for offset, vals, errs, color, name in ((-width / 2, h, h_err, colors[0], "h"),
                                            (width / 2, gh, gh_err, colors[1], "g(h)")):
        vals = np.asarray(vals, dtype=float)
        errs = np.nan_to_num(np.asarray(errs, dtype=float))
        ax.bar(x + offset, np.nan_to_num(vals), width, yerr=errs if errs.any() else None, color=color, capsize=3,
               label=name)
        for xi, v in zip(x + offset, vals):
            if not math.isnan(v):
                ax.annotate(f"{v:.1f}", (xi, v), ha="center", va="bottom", fontsize=7, xytext=(0, 2),
                            textcoords="offset points")
    for xi, g in zip(x, np.asarray(guess, dtype=float)):
        if not math.isnan(g):
            ax.hlines(g, xi - width, xi + width, colors="black", linestyles="--",
                      label="random guess" if xi == x[0] else None)
    ax.set_xticks(x, labels, rotation=20, ha="right")
    ax.set_ylabel("probe accuracy (%)")
    ax.set_ylim(0, 118)        # room above the bars for the legend
    ax.legend(fontsize=8, loc="upper center", ncol=3)


@artefact("tab3", EXPERIMENT)
def tab3(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    """Table 3: an MLP on frozen h or g(h) predicting which transformation was applied."""
    names = tasks()
    diag = diagonal(published, names)
    order = [metric_of(t, r) for t in names for r in REPRESENTATIONS]
    full = compare(ours, published, (AXIS,))
    table = full[full["read_as"] != "missing"].copy()
    table = table.iloc[np.argsort([order.index(m) for m in table["metric"]], kind="stable")].reset_index(drop=True)

    paper_guesses = {t: {"value": paper_guess(p, t), "runs": 1} for t, p in diag.items()}
    our_guesses = {}
    for task, point in diag.items():
        cell = _at(aggregate(ours, (AXIS,), metric_of(task, GUESS)), point)
        if cell:
            our_guesses[task] = {"value": float(cell["ours_mean"]), "runs": int(cell["ours_runs"])}

    figure, ((left, right),) = style.panels(scale=scale_of(ours), size=(6.4, 4.6),
                                           title="Table 3: predicting the applied transformation from h and g(h)")
    labels = [names[t] for t in diag]
    for ax, column, err, guesses in ((left, "published", None, paper_guesses),
                                     (right, "ours_mean", "ours_std", our_guesses)):
        series = {rep: [_of(table, metric_of(t, rep), column) for t in diag] for rep in REPRESENTATIONS}
        errors = {rep: [_of(table, metric_of(t, rep), err) if err else 0.0 for t in diag] for rep in REPRESENTATIONS}
        _grouped(ax, labels, series["h"], errors["h"], series["gh"], errors["gh"],
                 [guesses.get(t, {}).get("value", math.nan) for t in diag])

    points = [p[AXIS] for p in get_experiment(EXPERIMENT).points()]
    tables = {"Table 3 as printed, ours beside (each task after the pretraining the paper pairs it with)":
              paper_layout(table, diag, paper_guesses, our_guesses, names),
              "ours, every pretraining x every task (rows: transformation added in pretraining; columns: task, "
              "representation; the paper reports the cells of its own pretraining only)":
              full_matrix(ours, points, names)}
    pairs = ", ".join(f"{names[t]} after pretraining with {p!r} added" for t, p in diag.items())
    notes = [f"The paper's cells: {pairs}; the conclusions read these cells on both sides.",
             "Random guess (ours): the share of the most frequent label among our test split's probe labels."]
    return Artefact(figure, table, agreement(table),
                    table3_conclusions(table, paper_guesses, our_guesses, names), tables=tables, notes=notes)
