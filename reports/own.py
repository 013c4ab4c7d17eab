"""Experiments of one's own: our cells judged against seed noise, and beside the published numbers if they have some.

Every experiment declared without `published` gets this artefact unless a report function is registered for
it (reports/artefacts.py): our cells as mean ± std over seeds for each of the experiment's metrics, one panel
per metric (at most four), and a ranking by the experiment's `metric` that names which cells lie within seed
noise of the best one (the rule of reports/noise.py: |best − cell| <= 2 SE from the pooled within-cell std).
With one seed per cell the ranking goes by the means alone and says so, judging nothing against noise.

One declared with `published` (a table of its own, or rows of the paper's) and no report function gets the
paper's side too (`published_builder`): each published cell beside ours and the delta, one pair of panels per
published metric, the rank agreement over the cells of its `metric`, and the same ranking; no conclusions (the
claims a table supports are a report function's to check).

Where a scale does not evaluate the experiment's `metric` (smoke: no linear evaluation), its stand-in
(reports.compare.with_metric) ranks the cells and fills that metric's column, and every place that shows it says
so; the stand-in's own column keeps its numbers.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd

from registry.declare import Experiment
from reports import style
from reports.artefacts import Artefact, _bars, _paper_errors, ours_ylabel, scale_of
from reports.compare import Agreement, aggregate, agreement, canon, compare, point_keys, under_own_names
from reports.noise import Margin, pooled_noise
from reports.published import axis_column
from reports.style import axis_value, float_axis_labels

NO_PAPER = "no published numbers: an experiment of our own"
MAX_PANELS = 4


def point_label(point: dict, axes: tuple[str, ...]) -> str:
    return ", ".join(axis_value(point[a]) for a in axes)


def stand_in_of(ours: pd.DataFrame) -> str:
    """The metric standing in for the experiment's `metric` in `ours` (reports.compare.with_metric), or ""."""
    names = sorted(set(ours["stand_in"].dropna())) if len(ours) and "stand_in" in ours else []
    return ", ".join(names)


def heading(experiment: Experiment, metric: str, stand_in: str) -> str:
    """A metric's name where its numbers are shown: "linear_top1 (knn_top1 standing in)" for a stand-in."""
    return f"{metric} ({stand_in} standing in)" if stand_in and metric == experiment.metric else metric


def cells(experiment: Experiment, ours: pd.DataFrame) -> pd.DataFrame:
    """One row per (declared point, metric) in declaration order: the axis columns, metric, ours_mean, ours_std,
    ours_runs, ours_values, the paper's columns empty (so that the report's shared code reads it as a compare
    table) and stand_in (the metric whose numbers the experiment's `metric` shows, "" for its own). A stand-in's
    rows count under the experiment's metric and, among the further metrics, under their own name too."""
    axes = experiment.axes.names
    stand_in, named = stand_in_of(ours), under_own_names(ours)
    records = []
    for metric in experiment.all_metrics:
        mine = aggregate(ours if metric == experiment.metric else named, axes, metric)
        by_key = dict(zip(point_keys(mine, axes), mine.to_dict("records")))
        for point in experiment.points():
            match = by_key.get(tuple(canon(point[a]) for a in axes), {})
            records.append({**{axis_column(a): point[a] for a in axes}, "metric": metric,
                            "published": math.nan, "read_as": "missing", "uncertainty": math.nan,
                            "ours_mean": match.get("ours_mean", math.nan), "ours_std": match.get("ours_std", math.nan),
                            "ours_runs": int(match.get("ours_runs", 0)), "ours_values": match.get("ours_values", ()),
                            "delta": math.nan, "source": "",
                            "stand_in": stand_in if metric == experiment.metric else ""})
    return pd.DataFrame(records)


def at_declared_points(experiment: Experiment) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The filter of the rows whose axis point the experiment declares: the runs its cells are made of."""
    axes = experiment.axes.names
    declared = {tuple(canon(p[a]) for a in axes) for p in experiment.points()}

    def declared_only(runs: pd.DataFrame) -> pd.DataFrame:
        return runs[point_keys(runs, axes).isin(declared)] if len(runs) else runs
    return declared_only


def undeclared_note(experiment: Experiment, ours: pd.DataFrame) -> list[str]:
    """A line naming the finished runs at axis points the experiment does not declare (a sweep's trials), which
    are no cell of its table, nor of its ranking."""
    if ours.empty:
        return []
    runs = ours.drop_duplicates("run_id")
    others = runs[~runs["run_id"].isin(at_declared_points(experiment)(runs)["run_id"])]
    if others.empty:
        return []
    axes = experiment.axes.names
    points = sorted({point_label({a: r[axis_column(a)] for a in axes}, axes) for r in others.to_dict("records")})
    return [f"Not in the table nor the ranking: {len(others)} finished run(s) at axis points the experiment does not "
            f"declare ({'; '.join(points)}: a sweep's trials; the sweep's summary in <results>/optuna/ ranks them): "
            f"{', '.join(sorted(others['run_id']))}."]


def ranking(experiment: Experiment, table: pd.DataFrame) -> list[str]:
    """Lines ranking the cells of the experiment's metric: the best, those within noise of it, the others; with
    one seed per cell (noise not measured), the others by their means alone, judged against nothing."""
    axes = experiment.axes.names
    rows = table[(table["metric"] == experiment.metric) & table["ours_mean"].astype(float).notna()]
    stand_in = next((s for s in table.get("stand_in", ()) if s), "")
    by = experiment.metric + (f" ({stand_in} standing in: this scale does not evaluate {experiment.metric})"
                              if stand_in else "")
    if rows.empty:
        return [f"Ranking by {by}: no finished runs yet."]
    noise = pooled_noise(rows["ours_std"].astype(float).tolist(), rows["ours_runs"].tolist())
    rows = rows.sort_values("ours_mean", ascending=False, kind="stable")
    top = rows.iloc[0]
    label = lambda r: point_label({a: r[axis_column(a)] for a in axes}, axes)   # noqa: E731
    others, tied, below = [], [], []
    for _, row in rows.iloc[1:].iterrows():
        margin = Margin(float(top["ours_mean"] - row["ours_mean"]),
                        math.sqrt(1 / max(int(top["ours_runs"]), 1) + 1 / max(int(row["ours_runs"]), 1)))
        text = f"{label(row)} {row['ours_mean']:.2f} ({margin.value:+.2f})"
        others.append(text)
        (tied if margin.outcome(noise) == "within noise" else below).append(text)
    lines = [f"Ranking by {by}: best {label(top)} {top['ours_mean']:.2f} over {len(rows)} cell(s); "
             f"seed noise: {noise.describe()}."]
    if not noise.measured:
        return lines + ["With one seed per cell the order is by the means alone, not judged against noise: run more "
                        "seeds (`--seeds 0 1 2`) to tell it from noise.",
                        "Below the best, by mean: " + ("; ".join(others) if others else "none") + "."]
    lines.append("Within noise of the best: " + ("; ".join(tied) if tied else "none") + ".")
    lines.append("Below it beyond noise: " + ("; ".join(below) if below else "none") + ".")
    return lines


def wide(experiment: Experiment, table: pd.DataFrame) -> pd.DataFrame:
    """Our table in one row per point: each metric as "mean ± std (n)"."""
    axes = experiment.axes.names
    out = pd.DataFrame([{a: p[a] for a in axes} for p in experiment.points()])
    for a in axes:      # labels, not numbers: the report's one decimal would merge 0.1 and 0.1004
        if pd.api.types.is_float_dtype(out[a]):
            out[a] = float_axis_labels(out[a])
    stand_in = next((s for s in table.get("stand_in", ()) if s), "")
    for metric in experiment.all_metrics:
        part = table[table["metric"] == metric]
        out[heading(experiment, metric, stand_in)] = [_mean_std(m, s, n) for m, s, n in
                                                      zip(part["ours_mean"], part["ours_std"], part["ours_runs"])]
    return out


def _mean_std(mean: float, std: float, runs: int) -> str:
    if math.isnan(mean):
        return "—"
    spread = f" ± {std:.2f}" if not math.isnan(std) else ""
    return f"{mean:.2f}{spread} ({runs} run{'s' if runs != 1 else ''})"


def figure(experiment: Experiment, table: pd.DataFrame, scale: str | None):
    metrics = experiment.all_metrics[:MAX_PANELS]
    # As wide as the paper's artefacts' two panels, however many metrics share it.
    size = (2 * style.PANEL_SIZE[0] / len(metrics), style.PANEL_SIZE[1])
    fig, axes = style.panels(1, len(metrics), scale=None, title=f"{experiment.title} (ours, scale: {scale})",
                             size=size)
    labels = [point_label(p, experiment.axes.names) for p in experiment.points()]
    stand_in = next((s for s in table.get("stand_in", ()) if s), "")
    for ax, metric in zip(axes[0], metrics):
        part = table[table["metric"] == metric]
        values = part["ours_mean"].astype(float).to_numpy()
        ax.set_title(heading(experiment, metric, stand_in))
        if np.isnan(values).all():
            style.mark_empty(ax)
            continue
        x = np.arange(len(labels))
        ax.bar(x, np.nan_to_num(values), yerr=np.nan_to_num(part["ours_std"].astype(float).to_numpy()),
               color=style.OURS_COLOR, capsize=3, alpha=0.9)
        ax.set_xticks(x, labels, rotation=30, ha="right")
        low, high = np.nanmin(values), np.nanmax(values)
        ax.set_ylim(max(0.0, low - 0.2 * (high - low + 1)), high + 0.15 * (high - low + 1))
    return fig


def own_builder(experiment: Experiment) -> Callable[[pd.DataFrame, pd.DataFrame], Artefact]:
    """The artefact builder for `experiment` (one of our own), with the `(ours, published)` contract."""
    def build(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
        table = cells(experiment, ours)
        scale = ", ".join(sorted(set(ours["scale"]))) if len(ours) and "scale" in ours else None
        extra = {"ours: mean ± std over seeds, per metric": wide(experiment, table)}
        return Artefact(figure(experiment, table, scale), table, Agreement(0, math.nan, math.nan, NO_PAPER), [],
                        tables=extra, notes=ranking(experiment, table) + undeclared_note(experiment, ours))
    return build


def published_builder(experiment: Experiment) -> Callable[[pd.DataFrame, pd.DataFrame], Artefact]:
    """The artefact builder for `experiment`, one of our own with published numbers and no report function: ours
    beside the published cells, the rank agreement over the cells of its `metric`, no conclusions."""
    axes = experiment.axes.names

    def build(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
        table = compare(ours, published, axes)
        metrics = list(dict.fromkeys(table["metric"]))[:MAX_PANELS]
        figure, rows = style.panels(rows=len(metrics), scale=scale_of(ours), title=experiment.title)
        for (left, right), metric in zip(rows, metrics):
            part = table[table["metric"] == metric]
            labels = [point_label({a: r[axis_column(a)] for a in axes}, axes) for r in part.to_dict("records")]
            _bars(left, labels, part["published"], _paper_errors(part), style.PAPER_COLOR, metric)
            _bars(right, labels, part["ours_mean"], part["ours_std"], style.OURS_COLOR,
                  ours_ylabel(ours, metric) if metric == experiment.metric else metric)
            left.set_title(f"Published ({experiment.published.file}): {metric}")
            right.set_title(f"{style.ours_title(scale_of(ours))}: {metric}")
        mine = cells(experiment, ours)
        published_metrics = set(table["metric"])
        tables = {} if set(experiment.all_metrics) <= published_metrics else \
            {"ours: mean ± std over seeds, per metric": wide(experiment, mine)}
        ranked = table[table["metric"] == experiment.metric].reset_index(drop=True)
        notes = ranking(experiment, mine)
        if len(published_metrics) > 1:
            notes.append(f"Rank agreement is over the {experiment.metric} cells only.")
        return Artefact(figure, table, agreement(ranked), [], tables=tables, notes=notes)
    return build
