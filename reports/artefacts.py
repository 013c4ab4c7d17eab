"""One function per paper artefact, all registered in `ARTEFACTS`; each turns the long-form results into the
paper's table or figure with ours beside it.

Every function has the same shape, `(ours, published) -> Artefact`:
    ours       registry.store.load_results() rows of its experiment at one scale (all metrics), or of every
               experiment for the temperature curve, which reads whatever runs vary loss.temperature;
    published  reports.published.published_for(experiment): the paper's cells with how each was read.
It builds the delta table (reports/compare.py), one figure with the paper's panel beside ours, and checks the
paper's conclusions on both sides (reports/claims.py: each check returns the margins that are positive when the
claim holds, judged against our seed noise). It never trains and never imports torch.

The artefacts, in the paper's order: fig5 (Section 3), tab1 (Section 3), fig7 (4.1), fig8 (4.2), tab4 and tab5
(5.1, with the temperature curve tab5_sweep beside tab5), fig9 (5.2 / Table B.1).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from registry.discover import get_experiment
from registry.scales import SCALES
from reports import style
from reports.claims import (Check, Conclusion, Finding, Verdict, best, cell_at, conclude, conclusions, contrast,
                            difference, noise_of, slope, undecided)
from reports.compare import Agreement, agreement, aggregate, canon, compare, point_keys
from reports.noise import Margin
from reports.published import axis_column
from reports.ranks import spearman
from reports.variants import config_differences
from simclr_core.config import RunConfig
from simclr_core.validation import ConfigError

from matplotlib.axes import Axes  # noqa: E402  (after reports.style chose the Agg backend)
from matplotlib.figure import Figure  # noqa: E402
import seaborn as sns  # noqa: E402


@dataclass
class Artefact:
    """One paper artefact rebuilt from our results: numbers (`compare`, `tables`) kept apart from looks."""
    figure: Figure
    # The tidy delta table: axis columns, published, read_as, uncertainty, ours_mean, ours_std, ours_runs, delta.
    compare: pd.DataFrame
    agreement: Agreement
    conclusions: list[Conclusion]
    # Further views of the same numbers (e.g. our Figure 5 as a 7 x 8 grid), titled by their keys.
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Spec:
    build: Callable[[pd.DataFrame, pd.DataFrame], Artefact]
    # The declaration whose published cells, deviations and run count the artefact shows.
    experiment: str
    # Rows of the published CSV beyond the axis points (reports.published.published_for's extra_where).
    published_extra: Mapping[str, str | tuple[str, ...]] | None = None
    # True: `ours` holds every experiment's runs at the scale, not only `experiment`'s.
    reads_every_experiment: bool = False
    # Further experiments whose runs `ours` holds beside `experiment`'s (an artefact setting two methods side by
    # side); each run keeps its `experiment` column, so the builder tells them apart.
    also_reads: tuple[str, ...] = ()
    # The section's title where it is not the experiment's (an artefact reading several experiments).
    title: str = ""
    # Of the runs a section shows, those the artefact draws (None: all). Only these are described under "what ran"
    # and listed as left out; experiments the artefact sets apart are named in its own notes.
    drawn: Callable[[pd.DataFrame], pd.DataFrame] | None = None


ARTEFACTS: dict[str, Spec] = {}


def artefact(key: str, experiment: str, **options: Any) -> Callable:
    """Register the decorated function as the builder of paper artefact `key`."""
    def register(build: Callable[[pd.DataFrame, pd.DataFrame], Artefact]) -> Callable:
        if key in ARTEFACTS:
            raise ValueError(f"artefact {key!r} is registered twice")
        ARTEFACTS[key] = Spec(build, experiment, **options)
        return build
    return register


# ---- shared pieces -------------------------------------------------------------------------------------
def scale_of(ours: pd.DataFrame) -> str | None:
    """The scale(s) of `ours` for a panel title, naming a stand-in metric (reports.compare.with_metric) if any."""
    scales = sorted(set(ours["scale"])) if len(ours) and "scale" in ours else []
    stand_ins = sorted(set(ours["stand_in"].dropna())) if len(ours) and "stand_in" in ours else []
    return ", ".join(scales + [f"{m} standing in" for m in stand_ins]) or None


PAPER_YLABEL = "linear top-1 (%)"
# Axis labels of the metrics that may stand in for linear evaluation (reports.compare.STAND_INS).
_STAND_IN_YLABELS = {"knn_top1": "kNN top-1 (%)"}


def ours_ylabel(ours: pd.DataFrame, metric_label: str = PAPER_YLABEL) -> str:
    """The y label of a panel of our runs: the metric shown there (`metric_label`), a stand-in's where one stands
    in (the smoke scale's kNN for linear evaluation), not the paper's."""
    stand_ins = sorted(set(ours["stand_in"].dropna())) if len(ours) and "stand_in" in ours else []
    return " / ".join(_STAND_IN_YLABELS.get(m, f"{m} (%)") for m in stand_ins) or metric_label


def _bars(ax: Axes, labels: Sequence[str], values: Sequence[float], errors: Sequence[float],
          color: str, ylabel: str) -> None:
    values = np.asarray(values, dtype=float)
    if np.isnan(values).all():
        style.mark_empty(ax)
        return
    x = np.arange(len(labels))
    ax.bar(x, np.nan_to_num(values), yerr=np.nan_to_num(np.asarray(errors, dtype=float)), color=color,
           capsize=3, alpha=0.9)
    ax.set_xticks(x, labels, rotation=30, ha="right")
    for xi, v in zip(x, values):
        if not math.isnan(v):
            ax.annotate(f"{v:.1f}", (xi, v), ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                        textcoords="offset points")
    ax.set_ylabel(ylabel)
    low = np.nanmin(values)
    ax.set_ylim(max(0.0, low - 0.15 * (np.nanmax(values) - low + 1)), np.nanmax(values) * 1.04 + 0.5)


def _lines(ax: Axes, frame: pd.DataFrame, x: str, y: str, err: str, hue: str, x_order: Sequence[Any],
           xlabel: str, ylabel: str, hue_label: str) -> None:
    """One line per hue value over categorical x positions in `x_order`, error bars from `err`."""
    frame = frame[frame[y].astype(float).notna()]
    if frame.empty:
        style.mark_empty(ax)
        return
    positions = {canon(v): i for i, v in enumerate(x_order)}
    hues = list(dict.fromkeys(frame[hue]))
    palette = sns.color_palette("colorblind", len(hues))
    for color, h in zip(palette, hues):
        part = frame[frame[hue].map(canon) == canon(h)]
        xs = part[x].map(lambda v: positions[canon(v)])
        order = np.argsort(xs.to_numpy())
        ax.errorbar(xs.to_numpy()[order], part[y].astype(float).to_numpy()[order],
                    yerr=np.nan_to_num(part[err].astype(float).to_numpy()[order]), marker="o", capsize=3,
                    color=color, label=f"{h:g}" if isinstance(h, (int, float)) and not isinstance(h, bool) else str(h))
    ax.set_xticks(range(len(x_order)), [f"{v:g}" if isinstance(v, (int, float)) else str(v) for v in x_order])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(title=hue_label, fontsize=8, title_fontsize=8)


def _line_pair(row: Sequence[Axes], part: pd.DataFrame, ours: pd.DataFrame, x: str, hue: str, x_order: Sequence[Any],
               xlabel: str, hue_label: str, which: str, ylabel: str = PAPER_YLABEL) -> None:
    """One row of panels: the paper's `part` beside ours as lines of `hue` over `x`, both titled with `which`."""
    left, right = row
    for ax, y, err, label in ((left, "published", _paper_errors(part), ylabel),
                              (right, "ours_mean", part["ours_std"], ours_ylabel(ours, ylabel))):
        _lines(ax, part.assign(err=err), x, y, "err", hue, x_order, xlabel, label, hue_label)
    left.set_title(f"{style.paper_title()}, {which}")
    right.set_title(f"{style.ours_title(scale_of(ours))}, {which}")


def _ours_grid(table: pd.DataFrame, rows: Mapping[str, str], column: str) -> pd.DataFrame:
    """Our means as a grid: one row per combination of the axis columns `rows` (renamed to their values), one
    column per value of the axis column `column`."""
    grid = table.pivot_table(index=list(rows), columns=column, values="ours_mean", dropna=False, sort=False)
    return grid.rename_axis(columns=None).reset_index().rename(columns=dict(rows))


def _paper_errors(table: pd.DataFrame) -> pd.Series:
    """Error bars for the paper's panel: the plot-reading bound; none for printed numbers."""
    return table["uncertainty"].where(table["read_as"] == "read_from_plot", 0.0)


def _result(figure: Figure, table: pd.DataFrame, checks: Sequence[tuple[str, Check]], within: str | None = None,
            **extra: Any) -> Artefact:
    """`within`: an axis whose values the cells are ranked within (compare.agreement)."""
    return Artefact(figure, table, agreement(table, within=within), conclusions(table, checks), **extra)


# ---- Figure 5: augmentation pairs ------------------------------------------------------------------------
FIG5_AXES = ("first", "second")


def _best_pair_is_crop_color(cells: pd.DataFrame) -> Finding | Verdict:
    off = cells[cells["axis.first"] != cells["axis.second"]]
    is_cc = off.apply(lambda r: {r["axis.first"], r["axis.second"]} == {"crop", "color"}, axis=1) \
        if len(off) else pd.Series(dtype=bool)
    crop_color, others = off[is_cc], off[~is_cc] if len(off) else off
    if crop_color.empty or len(others) < 2:
        return undecided(f"needs a crop+color cell and at least 2 other pairs; have {len(off)} pairs")
    cc, other = best(crop_color), best(others)
    return Finding((difference(cc, other),),
                   f"crop+color {cc['value']:.1f} vs best other pair ({other['axis.first']}, "
                   f"{other['axis.second']}) {other['value']:.1f}, over {len(off)} pairs")


def _no_single_transformation_suffices(cells: pd.DataFrame) -> Finding | Verdict:
    single = cells[cells["axis.first"] == cells["axis.second"]]
    pairs = cells[cells["axis.first"] != cells["axis.second"]]
    if single.empty or pairs.empty:
        return undecided(f"needs single and paired cells; have {len(single)} single, {len(pairs)} pairs")
    s, p = best(single), best(pairs)
    return Finding((difference(p, s),), f"best pair ({p['axis.first']}, {p['axis.second']}) {p['value']:.1f} vs "
                                        f"best single {s['axis.first']} {s['value']:.1f}")


def _heatmap(ax: Axes, grid: pd.DataFrame) -> None:
    if grid.isna().all().all():
        style.mark_empty(ax)
        return
    sns.heatmap(grid.astype(float), annot=True, fmt=".1f", cmap="viridis", cbar=False, ax=ax,
                annot_kws={"fontsize": 8}, linewidths=0.5)
    ax.grid(False)                          # the theme's grid would cross the blank (not yet run) cells
    ax.set_xlabel("2nd transformation")
    ax.set_ylabel("1st transformation")
    ax.axvline(len(grid.columns) - 1, color="white", linewidth=3)   # the average column stands apart


@artefact("fig5", "augment_pairs", published_extra={"cell_kind": "row_average", "metric": "linear_top1"})
def fig5(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    """Figure 5: "linear evaluation (ImageNet top-1 accuracy) under individual or composition of data
    augmentations, applied only to one branch"; diagonal = single transformation, last column = row average."""
    table = compare(ours, published, FIG5_AXES)
    order = list(dict.fromkeys(table["axis.first"]))

    def grid(column: str) -> pd.DataFrame:
        return table.pivot(index="axis.first", columns="axis.second", values=column).reindex(
            index=order, columns=order).astype(float).rename_axis(index="1st", columns="2nd")

    paper, mine = grid("published"), grid("ours_mean")
    averages = published[~published["declared"]].set_index("axis.first")["value"] \
        if "declared" in published else pd.Series(dtype=float)
    paper["average"] = averages.reindex(order).to_numpy(dtype=float)
    mine["average"] = mine[order].mean(axis=1, skipna=False)     # only complete rows have an average
    figure, ((left, right),) = style.panels(scale=scale_of(ours), size=(6.2, 5.2),
                                           title="Figure 5: one-branch augmentation pairs, linear top-1")
    _heatmap(left, paper)
    _heatmap(right, mine)
    checks = [("crop + color is the best pair of transformations", _best_pair_is_crop_color),
              ("no single transformation suffices (the best pair beats the best single one)",
               _no_single_transformation_suffices)]
    return _result(figure, table, checks,
                   tables={"ours as the figure's grid (row = 1st, column = 2nd; average = row mean, "
                           "complete rows only)": mine.reset_index()})


# ---- Table 1: colour distortion strength ---------------------------------------------------------------
TAB1_AXES = ("color_strength", "blur")
_STRENGTH_NAMES = {0.125: "1/8", 0.25: "1/4", 0.5: "1/2", 1.0: "1"}


def _tab1_label(strength: Any, blur: Any) -> str:
    name = _STRENGTH_NAMES.get(canon(strength), f"{strength:g}")
    return f"s={name}" + (" +blur" if canon(blur) else "")


def _stronger_color_helps(cells: pd.DataFrame) -> Finding | Verdict:
    """The slope of top-1 over the strengths without blur, in steps up the list of strengths."""
    plain = cells[cells["axis.blur"].map(canon) == False].copy()  # noqa: E712
    if len(plain) < 3:
        return undecided(f"needs at least 3 strengths without blur; have {len(plain)}")
    plain["s"] = plain["axis.color_strength"].astype(float)
    plain = plain.sort_values("s")
    rho = spearman(plain["s"], plain["value"])
    weakest, strongest = plain.iloc[0], plain.iloc[-1]
    return Finding((slope(plain, "color_strength", "slope per step of s"),),
                   f"s={weakest['s']:g}: {weakest['value']:.1f} -> s={strongest['s']:g}: {strongest['value']:.1f}; "
                   f"Spearman(s, top-1) = {rho:.2f} over {len(plain)} strengths")


def _blur_helps(cells: pd.DataFrame) -> Finding | Verdict:
    with_blur, without = cell_at(cells, color_strength=1.0, blur=True), cell_at(cells, color_strength=1.0, blur=False)
    if with_blur is None or without is None:
        return undecided("needs s=1 with and without blur")
    return Finding((difference(with_blur, without),),
                   f"s=1 +blur {with_blur['value']:.1f} vs s=1 {without['value']:.1f}")


@artefact("tab1", "color_strength")
def tab1(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    """Table 1: "linear evaluation [...] under different color distortion strength"."""
    table = compare(ours, published, TAB1_AXES)
    labels = [_tab1_label(s, b) for s, b in zip(table["axis.color_strength"], table["axis.blur"])]
    figure, ((left, right),) = style.panels(scale=scale_of(ours), title="Table 1: colour distortion strength")
    _bars(left, labels, table["published"], _paper_errors(table), style.PAPER_COLOR, PAPER_YLABEL)
    _bars(right, labels, table["ours_mean"], table["ours_std"], style.OURS_COLOR, ours_ylabel(ours))
    checks = [("stronger colour distortion helps", _stronger_color_helps),
              ("adding blur to s=1 helps further", _blur_helps)]
    return _result(figure, table, checks)


# ---- Figure 7: model size ----------------------------------------------------------------------------------
FIG7_AXES = ("depth", "width")


def _monotone_in(cells: pd.DataFrame, along: str, within: str, word: str) -> Finding | Verdict:
    """A positive slope of top-1 over the steps of `along` inside every group of `within` holding 2+ points."""
    margins, detail = [], []
    for key, part in cells.groupby(cells[axis_column(within)].map(canon), sort=True):
        if len(part) >= 2:
            rho = spearman(part[axis_column(along)].astype(float), part["value"])
            margins.append(slope(part, along, f"{within} {key:g}:"))
            detail.append(f"{within} {key:g}: rho {rho:+.2f} ({len(part)})")
    if not margins:
        return undecided(f"needs 2 or more {along} values at some {within}")
    return Finding(tuple(margins), f"{word}: Spearman({along}, top-1) per {within} -> {'; '.join(detail)}; "
                                   f"margins are slopes per step of {along}")


@artefact("fig7", "model_width")
def fig7(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    """Figure 7: "linear evaluation of models with varied depth and width" (100 epochs; blue dots)."""
    table = compare(ours, published, FIG7_AXES)
    depths = sorted({canon(d) for d in table["axis.depth"]})
    figure, ((left, right),) = style.panels(scale=scale_of(ours), title="Figure 7: encoder depth and width")
    for ax, y, err, ylabel in ((left, "published", _paper_errors(table), PAPER_YLABEL),
                               (right, "ours_mean", table["ours_std"], ours_ylabel(ours))):
        _lines(ax, table.assign(err=err), "axis.depth", y, "err", "axis.width", [int(d) for d in depths],
               "ResNet depth", ylabel, "width multiplier")
    checks = [("bigger models help: deeper is better at every width",
               lambda c: _monotone_in(c, "depth", "width", "deeper")),
              ("bigger models help: wider is better at every depth",
               lambda c: _monotone_in(c, "width", "depth", "wider"))]
    return _result(figure, table, checks)


# ---- Figure 8: projection head --------------------------------------------------------------------------------
FIG8_AXES = ("head.kind", "head.out_dim")


def _mean_gap(upper: pd.DataFrame, lower: pd.DataFrame, label: str) -> Margin:
    """mean(upper cells) - mean(lower cells) as one contrast."""
    weights = [1 / len(upper)] * len(upper) + [-1 / len(lower)] * len(lower)
    return contrast(pd.concat([upper, lower]), weights, label)


def _nonlinear_linear_none(cells: pd.DataFrame) -> Finding | Verdict:
    kinds = cells["axis.head.kind"].map(canon)
    parts = {k: cells[kinds == k] for k in ("nonlinear", "linear", "none")}
    if any(v.empty for v in parts.values()):
        return undecided("needs nonlinear, linear and none cells; have "
                         + ", ".join(f"{k} {len(v)}" for k, v in parts.items()))
    nl, li, no = (parts[k]["value"].astype(float).mean() for k in ("nonlinear", "linear", "none"))
    return Finding((_mean_gap(parts["nonlinear"], parts["linear"], "nonlinear - linear"),
                    _mean_gap(parts["linear"], parts["none"], "linear - none")),
                   f"nonlinear {nl:.1f} (mean of {len(parts['nonlinear'])} dims), "
                   f"linear {li:.1f} (mean of {len(parts['linear'])}), none {no:.1f}")


@artefact("fig8", "head_type")
def fig8(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    """Figure 8: "linear evaluation of representations with different projection heads g(.) and various
    dimensions of z = g(h)"; the "none" bar is one value, drawn as a horizontal line."""
    table = compare(ours, published, FIG8_AXES)
    dims = sorted({int(d) for d in table.loc[table["axis.head.kind"] != "none", "axis.head.out_dim"]})
    figure, ((left, right),) = style.panels(scale=scale_of(ours), title="Figure 8: projection head")
    for ax, y, err, ylabel in ((left, "published", _paper_errors(table), PAPER_YLABEL),
                               (right, "ours_mean", table["ours_std"], ours_ylabel(ours))):
        heads = table[table["axis.head.kind"] != "none"].assign(err=err)
        _lines(ax, heads, "axis.head.out_dim", y, "err", "axis.head.kind", dims,
               "output dimension of z", ylabel, "projection head")
        none = table.loc[table["axis.head.kind"] == "none", y].astype(float)
        if len(none) and not math.isnan(none.iloc[0]):
            ax.axhline(none.iloc[0], color="0.3", linestyle="--", label="none (z = h)")
            ax.legend(fontsize=8)
    checks = [("nonlinear head > linear head > no head", _nonlinear_linear_none)]
    return _result(figure, table, checks)


# ---- Table 4: loss functions ----------------------------------------------------------------------------------
TAB4_AXES = ("loss.kind", "loss.semi_hard")
_LOSS_NAMES = {"nt_xent": "NT-Xent", "nt_logistic": "NT-Logi.", "margin_triplet": "Margin", "dcl": "DCL"}


def _tab4_label(kind: str, semi_hard: Any) -> str:
    return _LOSS_NAMES.get(kind, kind) + (" (sh)" if canon(semi_hard) else "")


def _nt_xent_best(cells: pd.DataFrame) -> Finding | Verdict:
    kinds = cells["axis.loss.kind"].map(canon)
    xent, others = cells[kinds == "nt_xent"], cells[kinds != "nt_xent"]
    if xent.empty or others.empty:
        return undecided(f"needs NT-Xent and another loss; have {len(xent)} and {len(others)}")
    top, other = best(xent), best(others)
    return Finding((difference(top, other),),
                   f"NT-Xent {top['value']:.1f} vs best other "
                   f"{_tab4_label(other['axis.loss.kind'], other['axis.loss.semi_hard'])} {other['value']:.1f}")


@artefact("tab4", "loss_variant")
def tab4(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    """Table 4: "linear evaluation (top-1) for models trained with different loss functions. 'sh' means
    using semi-hard negative mining"."""
    table = compare(ours, published, TAB4_AXES)
    labels = [_tab4_label(k, s) for k, s in zip(table["axis.loss.kind"], table["axis.loss.semi_hard"])]
    figure, ((left, right),) = style.panels(scale=scale_of(ours), title="Table 4: contrastive loss functions")
    _bars(left, labels, table["published"], _paper_errors(table), style.PAPER_COLOR, PAPER_YLABEL)
    _bars(right, labels, table["ours_mean"], table["ours_std"], style.OURS_COLOR, ours_ylabel(ours))
    return _result(figure, table, [("NT-Xent beats the other losses, with or without semi-hard mining",
                                    _nt_xent_best)])


# ---- Table 5: temperature and l2 normalisation ------------------------------------------------------------
TAB5_AXES = ("loss.normalize", "loss.temperature")


def _l2_helps(cells: pd.DataFrame, normalize: str = "axis.loss.normalize",
              temperature: str = "axis.loss.temperature") -> Finding | Verdict:
    flags = cells[normalize].map(canon)
    on, off = cells[flags == True], cells[flags == False]  # noqa: E712
    if on.empty or off.empty:
        return undecided(f"needs runs with and without l2 normalisation; have {len(on)} and {len(off)}")
    best_on, best_off = best(on), best(off)
    return Finding((difference(best_on, best_off),),
                   f"best with l2 norm {best_on['value']:.1f} (tau {float(best_on[temperature]):g}) vs best "
                   f"without {best_off['value']:.1f} (tau {float(best_off[temperature]):g})")


def _tab5_label(normalize: Any, temperature: Any) -> str:
    return ("l2" if canon(normalize) else "no l2") + f", τ={float(temperature):g}"


@artefact("tab5", "temperature_norm")
def tab5(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    """Table 5: "linear evaluation for models trained with different choices of l2 norm and temperature τ
    for NT-Xent loss" (top-1 here; the entropy and contrastive-accuracy columns are training logs)."""
    table = compare(ours, published, TAB5_AXES)
    labels = [_tab5_label(n, t) for n, t in zip(table["axis.loss.normalize"], table["axis.loss.temperature"])]
    figure, ((left, right),) = style.panels(scale=scale_of(ours), title="Table 5: l2 normalisation and temperature")
    _bars(left, labels, table["published"], _paper_errors(table), style.PAPER_COLOR, PAPER_YLABEL)
    _bars(right, labels, table["ours_mean"], table["ours_std"], style.OURS_COLOR, ours_ylabel(ours))
    return _result(figure, table, [("l2 normalisation helps (best with beats best without)", _l2_helps)])


SWEEP_BY = ("experiment", "loss.normalize", "loss.temperature")


def temperature_runs(ours: pd.DataFrame, metric: str | None) -> pd.DataFrame:
    """Rows of `metric` (None: of any metric) from every experiment whose finished runs take 2 or more values
    of loss.temperature (Table 5's grid, `python -m registry sweep` trials, or any other temperature ablation)."""
    needed = {"metric", "experiment", "loss.temperature", "loss.normalize"}
    if ours.empty or not needed <= set(ours.columns):
        return ours.iloc[0:0]
    rows = ours[ours["loss.temperature"].notna()]
    if metric is not None:
        rows = rows[rows["metric"] == metric]
    varied = rows.groupby("experiment")["loss.temperature"].nunique()
    return rows[rows["experiment"].isin(varied[varied >= 2].index)]


# The declaration whose setting the temperature curve is Table 5's in; its runs (grid and sweep trials) draw it.
TAB5_EXPERIMENT = "temperature_norm"
# What the points of the curve may differ in (the seed aside): the keys Table 5 varies.
CURVE_KEYS = frozenset({"loss.temperature", "loss.normalize"})


def _table5_config(runs: pd.DataFrame) -> RunConfig | None:
    """Table 5's config at the runs' scale: that of its own runs shown (the declared one, or the one the report was
    asked for), else the declared one; None where the scale is not declared."""
    own = runs[runs["experiment"] == TAB5_EXPERIMENT]
    if len(own):
        return RunConfig.from_dict(json.loads(own["config_json"].iloc[0]))
    scale = runs["scale"].iloc[0] if "scale" in runs else None
    if scale not in SCALES:
        return None
    experiment = get_experiment(TAB5_EXPERIMENT)
    return experiment.resolve(SCALES[scale], experiment.points()[0], 0)


def _temperature_only(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """`runs` of the experiments whose runs differ from Table 5's config (`_table5_config`) in nothing but
    temperature, l2 normalisation and seed (so that the curve never sets, say, DCL or another learning-rate scaling
    beside Table 5's cells, nor averages them), and for each other experiment, its name and how it differs."""
    if runs.empty or "config_json" not in runs:
        return runs, []
    once = runs.drop_duplicates("run_id")
    reference = _table5_config(once)
    apart: dict[str, set[str]] = {}
    for name, text in zip(once["experiment"], once["config_json"]):
        try:
            keys = {key for key, _, _ in config_differences(RunConfig.from_dict(json.loads(text)), reference)} \
                if reference is not None else {"(no declared config of Table 5 at this scale)"}
        except (ConfigError, ValueError, TypeError) as exc:
            keys = {f"(its config is not readable by this code: {exc})"}
        if keys - CURVE_KEYS:
            apart.setdefault(name, set()).update(keys - CURVE_KEYS)
    others = [f"{name} (in {', '.join(sorted(keys)[:3])}{', ...' if len(keys) > 3 else ''})"
              for name, keys in sorted(apart.items())]
    return runs[~runs["experiment"].isin(apart)], others


def on_the_curve(runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of `runs` that the temperature curve draws (`_temperature_only`)."""
    return _temperature_only(runs)[0]


@artefact("tab5_sweep", "temperature_norm", reads_every_experiment=True, drawn=on_the_curve)
def tab5_sweep(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    """Beside Table 5: accuracy against temperature, with and without l2 normalisation, from every finished
    run that varies loss.temperature in Table 5's config (the declared grid, any sweep trials, another temperature
    ablation of the same config), with Table 5's cells beside. Runs of another config are named, not drawn."""
    metric = sorted(set(published["metric"]))[0]
    runs, mixed = _temperature_only(temperature_runs(ours, metric))
    curve = aggregate(runs, (), metric, by=SWEEP_BY).rename(
        columns={"loss.normalize": "axis.loss.normalize", "loss.temperature": "axis.loss.temperature"})
    paper = published[published["declared"]] if "declared" in published else published
    table = _beside_published(curve, paper, TAB5_AXES).assign(metric=metric).sort_values(
        ["experiment", "axis.loss.normalize", "axis.loss.temperature"], ascending=[True, False, True],
        key=lambda column: column.map(canon) if column.dtype == object else column).reset_index(drop=True)
    figure, ((left, right),) = style.panels(scale=scale_of(ours), title="Temperature curve beside Table 5")
    _temperature_panel(left, paper.rename(columns={"value": "mean"}).assign(err=_paper_errors(paper),
                                                                           experiment="Table 5"), PAPER_YLABEL)
    _temperature_panel(right, table.rename(columns={"ours_mean": "mean"}).assign(err=table["ours_std"]),
                       ours_ylabel(ours), empty="no finished runs vary loss.temperature yet")
    ours_cells = table.rename(columns={"ours_mean": "value", "ours_runs": "runs"})
    verdicts = conclude("l2 normalisation helps (best with beats best without, over the whole curve)", _l2_helps,
                        paper.assign(runs=1), ours_cells[ours_cells["value"].notna()], noise_of(table))
    best = []
    for (name, normalize), part in table.groupby(["experiment", "axis.loss.normalize"], sort=True):
        tau = float(part.loc[part["ours_mean"].idxmax(), "axis.loss.temperature"])
        best.append(f"{name}, {'l2' if canon(normalize) else 'no l2'}: best τ {tau:g}")
    notes = [f"{len(runs['run_id'].unique()) if len(runs) else 0} finished runs vary loss.temperature"
             + (f" (experiments: {', '.join(sorted(set(runs['experiment'])))})" if len(runs) else "")] + best
    if mixed:
        notes.append(f"not on the curve: {'; '.join(mixed)}: their runs differ from Table 5's config in more than "
                     "temperature, l2 normalisation and seed (their own sections show them)")
    return Artefact(figure, table, agreement(table), [verdicts], notes=notes)


def _beside_published(curve: pd.DataFrame, paper: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame:
    """`curve` (ours, any points) with the published cell at the same axis point where there is one."""
    columns = ["value", "read_as", "uncertainty", "source"]
    found = dict(zip(point_keys(paper, axes), paper[columns].to_dict("records")))
    empty = {"value": math.nan, "read_as": "", "uncertainty": math.nan, "source": ""}
    cells = pd.DataFrame([found.get(key, empty) for key in point_keys(curve, axes)], index=curve.index,
                         columns=columns).rename(columns={"value": "published"})
    out = pd.concat([curve.drop(columns=["seeds"]), cells], axis=1)
    return out.assign(delta=out["ours_mean"].astype(float) - out["published"].astype(float))


def _temperature_panel(ax: Axes, frame: pd.DataFrame, ylabel: str, empty: str = style.NO_DATA) -> None:
    frame = frame[frame["mean"].astype(float).notna()]
    if frame.empty:
        style.mark_empty(ax, empty)
        return
    groups = frame.groupby(["experiment", frame["axis.loss.normalize"].map(canon)], sort=True)
    palette = sns.color_palette("colorblind", groups.ngroups)
    for color, ((name, normalize), part) in zip(palette, groups):
        part = part.assign(t=part["axis.loss.temperature"].astype(float)).sort_values("t")
        ax.errorbar(part["t"], part["mean"].astype(float), yerr=np.nan_to_num(part["err"].astype(float)),
                    marker="o", capsize=3, color=color, linestyle="-" if normalize else "--",
                    label=f"{name}, {'l2 norm' if normalize else 'no l2 norm'}")
    ax.set_xscale("log")
    ax.set_xlabel("temperature τ (log scale)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)


# ---- Figure 9 / Table B.1: batch size x epochs ----------------------------------------------------------------
FIG9_AXES = ("batch_size", "epochs", "optim.lr_scaling")


def _big_batches_help_most_early(cells: pd.DataFrame) -> Finding | Verdict:
    linear = cells[cells["axis.optim.lr_scaling"].map(canon) == "linear"]
    if linear.empty:
        return undecided("needs linear-scaling cells")
    epochs = sorted({float(e) for e in linear["axis.epochs"]})
    if len(epochs) < 2:
        return undecided("needs at least two epoch counts")
    first, last = epochs[0], epochs[-1]
    batches = lambda e: {float(b) for b in linear.loc[linear["axis.epochs"].astype(float) == e, "axis.batch_size"]}
    common = sorted(batches(first) & batches(last))
    if len(common) < 2:
        return undecided(f"needs two batch sizes run at both {first:g} and {last:g} epochs")
    small, large = common[0], common[-1]
    corners = pd.DataFrame([cell_at(linear, batch_size=large, epochs=first), cell_at(linear, batch_size=small, epochs=first),
                            cell_at(linear, batch_size=large, epochs=last), cell_at(linear, batch_size=small, epochs=last)])
    early = contrast(corners.iloc[:2], [1, -1], f"gap at {first:g} epochs")
    shrinks = contrast(corners, [1, -1, -1, 1], "gap early - gap late")
    late = early.value - shrinks.value
    return Finding((early, shrinks),
                   f"batch {large:g} minus batch {small:g}: {early.value:+.1f} at {first:g} epochs vs "
                   f"{late:+.1f} at {last:g} epochs (linear lr scaling)")


def _sqrt_helps_small_batches_early(cells: pd.DataFrame) -> Finding | Verdict:
    if cells.empty:
        return undecided("no cells")
    e, b = cells["axis.epochs"].astype(float).min(), cells["axis.batch_size"].astype(float).min()
    root = cell_at(cells, batch_size=b, epochs=e, optim__lr_scaling="sqrt")
    linear = cell_at(cells, batch_size=b, epochs=e, optim__lr_scaling="linear")
    if root is None or linear is None:
        return undecided(f"needs both scalings at batch {b:g}, {e:g} epochs")
    return Finding((difference(root, linear),),
                   f"batch {b:g}, {e:g} epochs: sqrt {root['value']:.1f} vs linear {linear['value']:.1f}")


@artefact("fig9", "batch_epochs")
def fig9(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    """Figure 9 / Table B.1: "linear evaluation models (ResNet-50) trained with different batch size and
    epochs", under linear (0.3 x B/256) and square-root (0.075 x sqrt(B)) learning-rate scaling."""
    table = compare(ours, published, FIG9_AXES)
    epochs = sorted({int(e) for e in table["axis.epochs"]})
    figure, axes = style.panels(rows=2, scale=scale_of(ours), title="Figure 9 / Table B.1: batch size x epochs")
    for row, scaling in zip(axes, ("linear", "sqrt")):
        _line_pair(row, table[table["axis.optim.lr_scaling"] == scaling], ours, "axis.epochs", "axis.batch_size",
                   epochs, "training epochs (paper units)", "batch size", f"{scaling} lr scaling")
    checks = [("larger batches help most when training is short", _big_batches_help_most_early),
              ("square-root lr scaling helps the smallest batch at the fewest epochs",
               _sqrt_helps_small_batches_early)]
    return _result(figure, table, checks,
                   tables={"ours as Table B.1 (rows: lr scaling, batch size; columns: epochs; paper units)":
                           _ours_grid(table, {"axis.optim.lr_scaling": "lr scaling", "axis.batch_size": "batch size"},
                                      "axis.epochs")})
