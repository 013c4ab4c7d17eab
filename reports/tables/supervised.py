"""The paper's supervised baselines: Table 1's supervised rows, Figure 7's supervised crosses and Table B.3
(supervised training, longer and with the contrastive augmentations), each scored by the supervised network's own
classifier (supervised_top1).

Table 1's conclusion for supervised models is the mirror of SimCLR's: stronger colour distortion does not help
(top-1 falls as s grows, and blur does not add); `tab1_supervised_vs_simclr` sets both methods side by side and
checks Section 3.3's claim across them (colour, and blur, help SimCLR more than supervised training). Figure 7's: wider supervised ResNet-50s are better. Table B.3's
(footnote 5 of Table 1): longer training helps the stronger augmentations more than crop alone, and a wider network
is better in every cell.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from reports import style
from reports.artefacts import (TAB1_AXES, Artefact, _bars, _line_pair, _lines, _ours_grid, _paper_errors, _result,
                               _stronger_color_helps, _tab1_label, artefact, ours_ylabel, scale_of)
from reports.claims import Finding, Verdict, cell_at, contrast, difference, slope, slope_weights, undecided
from reports.compare import canon, compare, with_metric
from reports.noise import Margin
from reports.published import axis_column, published_cells
from registry.discover import get_experiment

YLABEL = "supervised top-1 (%)"
TABB3_AXES = ("width", "epochs", "augmentation")
AUGMENTATIONS = ("crop", "crop+color", "crop+color+blur")


def _negated(margin: Margin, label: str) -> Margin:
    return Margin(-margin.value, margin.se_factor, label)


# ---- Table 1, supervised rows -----------------------------------------------------------------------------------
def _stronger_color_does_not_help(cells: pd.DataFrame) -> Finding | Verdict:
    """Holds when top-1 falls as s grows (the negated slope over the strengths without blur is positive)."""
    found = _stronger_color_helps(cells)
    if isinstance(found, Verdict):
        return found
    return Finding(tuple(_negated(m, "minus the slope per step of s") for m in found.margins), found.evidence)


def _blur_does_not_help(cells: pd.DataFrame) -> Finding | Verdict:
    with_blur, without = cell_at(cells, color_strength=1.0, blur=True), cell_at(cells, color_strength=1.0, blur=False)
    if with_blur is None or without is None:
        return undecided("needs s=1 with and without blur")
    return Finding((difference(without, with_blur, "s=1 minus s=1 +blur"),),
                   f"s=1 {without['value']:.1f} vs s=1 +blur {with_blur['value']:.1f}")


@artefact("tab1_supervised", "color_strength_supervised")
def tab1_supervised(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    """Table 1's supervised rows: top-1 of supervised ResNet-50s trained with colour distortion of strength s."""
    table = compare(ours, published, TAB1_AXES)
    labels = [_tab1_label(s, b) for s, b in zip(table["axis.color_strength"], table["axis.blur"])]
    figure, ((left, right),) = style.panels(scale=scale_of(ours),
                                            title="Table 1, supervised rows: colour distortion strength")
    _bars(left, labels, table["published"], _paper_errors(table), style.PAPER_COLOR, YLABEL)
    _bars(right, labels, table["ours_mean"], table["ours_std"], style.OURS_COLOR, ours_ylabel(ours, YLABEL))
    checks = [("supervised: stronger colour distortion does not help", _stronger_color_does_not_help),
              ("supervised: adding blur to s=1 does not help", _blur_does_not_help)]
    return _result(figure, table, checks)


# ---- Table 1, both methods ----------------------------------------------------------------------------------------
SIMCLR_TAB1 = "color_strength"
METHOD_OF = {SIMCLR_TAB1: "SimCLR", "color_strength_supervised": "supervised"}
# SimCLR's Table 1 metric (reports.compare.with_metric puts a stand-in in its place where linear evaluation did
# not run: the smoke scale's kNN).
SIMCLR_METRIC = "linear_top1"


def _both_methods(ours: pd.DataFrame, published: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ours, published) of both experiments with an `axis.method` column: SimCLR's linear top-1 (kNN standing in
    where no run has it) and the supervised runs' own top-1."""
    paper = pd.concat([published_cells(get_experiment(SIMCLR_TAB1)).assign(**{"axis.method": "SimCLR"}),
                       published.assign(**{"axis.method": "supervised"})], ignore_index=True)
    if ours.empty:
        return ours.assign(**{"axis.method": []}), paper
    ours = ours.assign(**{"axis.method": ours["experiment"].map(METHOD_OF)})
    simclr, _ = with_metric(ours[ours["axis.method"] == "SimCLR"], SIMCLR_METRIC)
    return pd.concat([ours[ours["axis.method"] != "SimCLR"], simclr], ignore_index=True), paper


def _plain_strength_weights(cells: pd.DataFrame) -> tuple[pd.DataFrame, list[float]]:
    """The cells without blur and the weights of their least-squares slope over the steps of s."""
    plain = cells[cells[axis_column("blur")].map(canon) == False]  # noqa: E712
    return plain, list(slope_weights(plain, "color_strength")) if len(plain) > 1 else []


def _color_helps_simclr_more(cells: pd.DataFrame) -> Finding | Verdict:
    """SimCLR's slope of top-1 over s minus the supervised models' (both over the strengths without blur)."""
    parts = {m: _plain_strength_weights(cells[cells[axis_column("method")] == m]) for m in ("SimCLR", "supervised")}
    if any(len(plain) < 3 for plain, _ in parts.values()):
        return undecided("needs at least 3 strengths without blur for each method")
    (simclr, w_simclr), (supervised, w_supervised) = parts["SimCLR"], parts["supervised"]
    margin = contrast(pd.concat([simclr, supervised]), [*w_simclr, *(-w for w in w_supervised)],
                      "SimCLR's slope per step of s minus supervised's")
    simclr_slope = float(simclr["value"].astype(float) @ w_simclr)
    supervised_slope = float(supervised["value"].astype(float) @ w_supervised)
    return Finding((margin,), f"top-1 per step of s: SimCLR {simclr_slope:+.2f}, supervised {supervised_slope:+.2f}")


def _blur_helps_simclr_more(cells: pd.DataFrame) -> Finding | Verdict:
    corners = [cell_at(cells, method=m, color_strength=1.0, blur=b) for m in ("SimCLR", "supervised")
               for b in (True, False)]
    if any(c is None for c in corners):
        return undecided("needs s=1 with and without blur for each method")
    margin = contrast(pd.DataFrame(corners), [1.0, -1.0, -1.0, 1.0], "SimCLR's gain from blur minus supervised's")
    return Finding((margin,), f"blur at s=1: SimCLR {corners[0]['value'] - corners[1]['value']:+.1f}, supervised "
                              f"{corners[2]['value'] - corners[3]['value']:+.1f}")


@artefact("tab1_supervised_vs_simclr", "color_strength_supervised", also_reads=(SIMCLR_TAB1,),
          title="Table 1, both methods: SimCLR (linear evaluation) and supervised training x colour distortion strength")
def tab1_supervised_vs_simclr(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    """Table 1 whole: SimCLR (linear evaluation) and supervised ResNet-50 under the same colour distortions."""
    ours, paper = _both_methods(ours, published)
    table = compare(ours, paper, ("method", *TAB1_AXES))
    table = table.assign(label=[_tab1_label(s, b) for s, b in zip(table["axis.color_strength"], table["axis.blur"])])
    order = list(dict.fromkeys(table["label"]))
    figure, ((left, right),) = style.panels(scale=scale_of(ours), title="Table 1: SimCLR and supervised, colour "
                                                                        "distortion strength")
    for ax, y, err, ylabel in ((left, "published", _paper_errors(table), "top-1 (%)"),
                               (right, "ours_mean", table["ours_std"], "top-1 (%)")):
        _lines(ax, table.assign(err=err), "label", y, "err", "axis.method", order, "colour distortion", ylabel,
               "method (SimCLR: linear evaluation)")
    checks = [("colour distortion helps SimCLR more than supervised training (Section 3.3)", _color_helps_simclr_more),
              ("blur at s=1 helps SimCLR more than supervised training", _blur_helps_simclr_more)]
    # Ranked within each method: a SimCLR linear-evaluation cell and a supervised cell are different measures.
    return _result(figure, table, checks, within="method")


# ---- Figure 7, supervised crosses ------------------------------------------------------------------------------
def _wider_supervised_is_better(cells: pd.DataFrame) -> Finding | Verdict:
    if len(cells) < 2:
        return undecided(f"needs 2 or more widths; have {len(cells)}")
    ordered = cells.assign(w=cells[axis_column("width")].astype(float)).sort_values("w")
    return Finding((slope(ordered, "width", "slope per step of width"),),
                   " -> ".join(f"{w:g}x: {v:.1f}" for w, v in zip(ordered["w"], ordered["value"])))


@artefact("fig7_supervised", "model_width_supervised")
def fig7_supervised(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    """Figure 7's supervised crosses: supervised ResNet-50 at widths 1x, 2x and 4x."""
    table = compare(ours, published, ("width",))
    table = table.iloc[table["axis.width"].astype(float).argsort(kind="stable")]
    labels = [f"R50 ({canon(w):g}x)" for w in table["axis.width"]]
    figure, ((left, right),) = style.panels(scale=scale_of(ours), title="Figure 7, supervised crosses: width")
    _bars(left, labels, table["published"], _paper_errors(table), style.PAPER_COLOR, YLABEL)
    _bars(right, labels, table["ours_mean"], table["ours_std"], style.OURS_COLOR, ours_ylabel(ours, YLABEL))
    return _result(figure, table, [("supervised: a wider ResNet-50 is better", _wider_supervised_is_better)])


# ---- Table B.3 ----------------------------------------------------------------------------------------------------
def _longer_training_helps_strong_augmentation(cells: pd.DataFrame) -> Finding | Verdict:
    """(crop+color+blur - crop) at the most epochs minus the same gain at the fewest, averaged over the widths."""
    epochs = sorted({canon(e) for e in cells[axis_column("epochs")]})
    if len(epochs) < 2:
        return undecided("needs 2 or more epoch counts")
    rows, weights, detail = [], [], []
    widths = sorted({canon(w) for w in cells[axis_column("width")]})
    for width in widths:
        corners = [cell_at(cells, width=width, epochs=e, augmentation=a)
                   for e in (epochs[-1], epochs[0]) for a in ("crop+color+blur", "crop")]
        if any(c is None for c in corners):
            continue
        rows.extend(corners)
        weights.extend([1.0, -1.0, -1.0, 1.0])
        long_gain, short_gain = corners[0]["value"] - corners[1]["value"], corners[2]["value"] - corners[3]["value"]
        detail.append(f"width {width:g}: {short_gain:+.1f} at {epochs[0]:g} epochs -> {long_gain:+.1f} at "
                      f"{epochs[-1]:g}")
    if not rows:
        return undecided("needs crop and crop+color+blur at the fewest and the most epochs")
    count = len(detail)
    margin = contrast(pd.DataFrame(rows), [w / count for w in weights],
                      f"gain of colour + blur over crop, {epochs[-1]:g} minus {epochs[0]:g} epochs")
    return Finding((margin,), "colour + blur minus crop: " + "; ".join(detail))


def _wider_is_better(cells: pd.DataFrame) -> Finding | Verdict:
    widths = sorted({canon(w) for w in cells[axis_column("width")]})
    if len(widths) < 2:
        return undecided("needs 2 widths")
    margins = []
    for (epochs, augmentation), part in cells.groupby([cells[axis_column("epochs")].map(canon),
                                                      cells[axis_column("augmentation")]], sort=True):
        wide, narrow = (cell_at(part, width=w) for w in (widths[-1], widths[0]))
        if wide is not None and narrow is not None:
            margins.append(difference(wide, narrow, f"{augmentation}, {epochs:g} epochs"))
    if not margins:
        return undecided("needs both widths in some cell")
    return Finding(tuple(margins), f"width {widths[-1]:g} minus width {widths[0]:g} in {len(margins)} cells: "
                                   + ", ".join(f"{m.value:+.1f}" for m in margins))


def _augmentation_order(value: Any) -> int:
    return AUGMENTATIONS.index(value) if value in AUGMENTATIONS else len(AUGMENTATIONS)


@artefact("tabB3", "supervised_augment")
def tab_b3(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    """Table B.3: supervised ResNet-50 (1x, 4x) x training epochs x crop / +colour / +colour+blur."""
    table = compare(ours, published, TABB3_AXES)
    epochs = sorted({int(canon(e)) for e in table["axis.epochs"]})
    widths = sorted({canon(w) for w in table["axis.width"]})
    figure, axes = style.panels(rows=len(widths), scale=scale_of(ours),
                                title="Table B.3: supervised training, longer and with stronger augmentation")
    for row, width in zip(axes, widths):
        part = table[table["axis.width"].map(canon) == width]
        part = part.iloc[part["axis.augmentation"].map(_augmentation_order).argsort(kind="stable")]
        _line_pair(row, part, ours, "axis.epochs", "axis.augmentation", epochs, "training epochs (paper units)",
                   "augmentation", f"width {width:g}x", YLABEL)
    checks = [("longer training helps colour + blur more than crop alone (footnote 5)",
               _longer_training_helps_strong_augmentation),
              ("the wider network is better in every cell", _wider_is_better)]
    return _result(figure, table, checks,
                   tables={"ours as Table B.3 (rows: width, augmentation; columns: epochs; paper units)":
                           _ours_grid(table, {"axis.width": "width", "axis.augmentation": "augmentation"},
                                      "axis.epochs")})
