"""Appendix B.9 (SimCLR pretrained on CIFAR-10): Figure B.7, batch size x epochs, and Figure B.8, temperature x
batch size, our grids beside the paper's CIFAR-10 numbers, with the B.9 text's conclusions checked on our cells.

Neither figure is available to us (reports/published/README.md): the paper's side is two numbers (B.9's best
model, 94.0 at batch 1024 and 1000 epochs, and a reader's ~85 at batch 1024 and 100 epochs) and the text. A
conclusion is judged on the paper's cells where they decide it; where they do not (every conclusion here, with
two cells at one batch size) the paper's side is its statement, in reports/references.py's form ("holds",
"stated in the text, no numbers: ..."), never a verdict measured on numbers.

Figure B.7 (text: "consistent with ImageNet", read as Figure 9's claim): longer training helps at every batch size,
more so at small batch sizes; batch 4096 degrades slightly (below 2048). Figure B.8 (text, > 300 epochs):
temperature 0.5 is the best of {0.1, 0.5, 1.0} at every batch size (the check is reports/references.py's, per
batch size); temperature 0.1 improves as the batch size grows.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Sequence

import numpy as np
import pandas as pd
import seaborn as sns

from reports import style
from reports.artefacts import PAPER_YLABEL, Artefact, _paper_errors, artefact, ours_ylabel, scale_of
from reports.claims import (Check, Conclusion, Finding, Verdict, cell_at, cells_of, contrast, difference, judged,
                            noise_of, slope, undecided)
from reports.compare import aggregate, agreement, canon, compare, point_keys
from reports.published import axis_column
from reports.ranks import spearman
from reports.references import B8_SOURCE, B8_TEMPERATURES, CIFAR10_FILE, PAPER_STATES, _tau_half_best

from matplotlib.axes import Axes  # noqa: E402  (after reports.style chose the Agg backend)

B7_AXES = ("batch_size", "epochs")
B8_AXES = ("loss.temperature", "batch_size")
B7_SOURCE = f"{CIFAR10_FILE}, Figure B.7 text"
B7_STATES = Verdict("holds", f"stated in the text, no numbers: {B7_SOURCE}")
PAPER_TITLE = "Paper (CIFAR-10): the figure is missing"
MISSING_NOTE = ("Figure {fig}'s numbers are not available (appendixB9_cifar10.csv: MISSING); the paper's side is "
                "B.9's best model (94.0: batch 1024, 1000 epochs per the author's comment; learning rate one of "
                "0.5/1.0/1.5 and temperature not stated){reading}, and the text's conclusions, recorded as stated.")


def text_conclusions(table: pd.DataFrame, checks: Sequence[tuple[str, Check]], statement: Verdict,
                     source: str) -> list[Conclusion]:
    """Each check on ours (against seed noise) and on the paper's cells; where those cannot decide it, the paper's
    side is `statement`, what its text says."""
    paper, ours, noise = cells_of(table, "published"), cells_of(table, "ours_mean"), noise_of(table)
    found = []
    for claim, check in checks:
        on_paper = judged(check(paper), None)
        found.append(Conclusion(claim, statement if on_paper.outcome == "undecided" else on_paper,
                                judged(check(ours), noise), f"CIFAR-10: {source}"))
    return found


def _label(value: float, read_as: str) -> str:
    """A published number as the paper gives it: printed to one decimal, a reading as "~85"."""
    return f"~{value:g}" if read_as == "read_from_plot" else f"{value:.1f}"


def _mean_std(mean: float, std: float, runs: int) -> str:
    if runs == 0 or math.isnan(mean):
        return "—"
    return f"{mean:.1f} ± {std:.1f}" if runs > 1 and not math.isnan(std) else f"{mean:.1f}"


def grid_view(table: pd.DataFrame, rows: str, columns: str) -> pd.DataFrame:
    """`table` (compare's columns) as rows x columns of "mean ± std", the paper's number beside where it has one."""
    text = [_mean_std(m, s, int(n)) + ("" if math.isnan(float(p)) else f" (paper {_label(float(p), r)})")
            for m, s, n, p, r in zip(table["ours_mean"], table["ours_std"], table["ours_runs"], table["published"],
                                     table["read_as"])]
    out = table.assign(text=text).pivot(index=axis_column(rows), columns=axis_column(columns), values="text")
    out = out.reindex(index=list(dict.fromkeys(table[axis_column(rows)])),
                      columns=list(dict.fromkeys(table[axis_column(columns)])))
    return out.rename_axis(index=rows, columns=None).reset_index()


def knn_cells(ours: pd.DataFrame, table: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame | None:
    """Our kNN top-1 at `table`'s points, in compare's columns; None where no run reports it beside linear top-1
    (at smoke scale kNN is already the main grid, standing in for linear top-1)."""
    mine = aggregate(ours, axes, "knn_top1")
    if mine.empty:
        return None
    found = dict(zip(point_keys(mine, axes), mine.to_dict("records")))
    rows = [found.get(key, {}) for key in point_keys(table, axes)]
    return table[[axis_column(a) for a in axes]].assign(
        ours_mean=[r.get("ours_mean", math.nan) for r in rows], ours_std=[r.get("ours_std", math.nan) for r in rows],
        ours_runs=[r.get("ours_runs", 0) for r in rows], published=math.nan, read_as="missing")


def views(ours: pd.DataFrame, table: pd.DataFrame, axes: Sequence[str], rows: str, columns: str,
          name: str) -> dict[str, pd.DataFrame]:
    """The artefact's extra tables: ours (linear top-1, or its stand-in) as the figure's grid, and kNN top-1 beside.
    `name` is the figure's ("B.7")."""
    layout = f"rows: {rows.removeprefix('loss.').replace('_', ' ')}; columns: {columns.replace('_', ' ')}, paper units"
    out = {f"ours as Figure {name}'s grid ({layout}; mean ± std over seeds, the paper's number beside where it has "
           "one)": grid_view(table, rows, columns)}
    knn = knn_cells(ours, table, axes)
    if knn is not None:
        out[f"ours, kNN top-1, as Figure {name}'s grid ({layout}; mean ± std over seeds)"] = \
            grid_view(knn, rows, columns)
    return out


# ---- Figure B.7: batch size x epochs ---------------------------------------------------------------------------
def _epoch_ends(cells: pd.DataFrame) -> tuple[float, float, list[float]] | None:
    """(fewest epochs, most epochs, the batch sizes with a cell at both), or None without two such batch sizes."""
    if cells.empty:
        return None
    epochs = sorted({float(e) for e in cells["axis.epochs"]})
    if len(epochs) < 2:
        return None
    first, last = epochs[0], epochs[-1]
    batches = sorted(float(b) for b in set(cells["axis.batch_size"])
                     if all(cell_at(cells, batch_size=b, epochs=e) is not None for e in (first, last)))
    return (first, last, batches) if len(batches) >= 2 else None


def longer_training_helps(cells: pd.DataFrame) -> Finding | Verdict:
    """Margins: at each batch size, the most epochs minus the fewest."""
    ends = _epoch_ends(cells)
    if ends is None:
        return undecided("needs the fewest and the most epochs at two or more batch sizes")
    first, last, batches = ends
    pairs = {b: (cell_at(cells, batch_size=b, epochs=first), cell_at(cells, batch_size=b, epochs=last))
             for b in batches}
    return Finding(tuple(difference(late, early, f"batch {b:g}:") for b, (early, late) in pairs.items()),
                   f"{first:g} -> {last:g} epochs: " + "; ".join(f"batch {b:g} {early['value']:.1f} -> "
                                                                 f"{late['value']:.1f}"
                                                                 for b, (early, late) in pairs.items()))


def longer_training_helps_small_batches_more(cells: pd.DataFrame) -> Finding | Verdict:
    """Margin: the gain from the fewest to the most epochs at the smallest batch size minus that at the largest."""
    ends = _epoch_ends(cells)
    if ends is None:
        return undecided("needs the fewest and the most epochs at two or more batch sizes")
    first, last, batches = ends
    small, large = batches[0], batches[-1]
    corners = pd.DataFrame([cell_at(cells, batch_size=b, epochs=e) for b in (small, large) for e in (last, first)])
    gains = corners["value"].astype(float).to_numpy()
    return Finding((contrast(corners, [1, -1, -1, 1], f"gain at {small:g} - gain at {large:g}"),),
                   f"{first:g} -> {last:g} epochs: batch {small:g} gains {gains[0] - gains[1]:+.1f}, "
                   f"batch {large:g} {gains[2] - gains[3]:+.1f}")


def batch_4096_degrades(cells: pd.DataFrame) -> Finding | Verdict:
    """Margin: batch 2048 minus batch 4096, averaged over the epoch counts that have both."""
    epochs = sorted({float(e) for e in cells["axis.epochs"]}) if len(cells) else []
    pairs = [(e, cell_at(cells, batch_size=2048, epochs=e), cell_at(cells, batch_size=4096, epochs=e)) for e in epochs]
    pairs = [(e, a, b) for e, a, b in pairs if a is not None and b is not None]
    if not pairs:
        return undecided("needs batch 2048 and batch 4096 at the same epochs")
    rows = pd.DataFrame([a for _, a, _ in pairs] + [b for _, _, b in pairs])
    n = len(pairs)
    return Finding((contrast(rows, [1 / n] * n + [-1 / n] * n, "mean 2048 - 4096"),),
                   "batch 2048 vs 4096: " + "; ".join(f"{e:g} epochs {a['value']:.1f} vs {b['value']:.1f}"
                                                       for e, a, b in pairs))


B7_CHECKS: tuple[tuple[str, Check], ...] = (
    ("longer training helps at every batch size (as on ImageNet, Figure 9)", longer_training_helps),
    ("longer training helps small batches more than large ones (as on ImageNet, Figure 9)",
     longer_training_helps_small_batches_more),
    ("batch size 4096 shows a small degradation (below 2048, on average over the epochs)", batch_4096_degrades),
)


def _grouped_bars(ax: Axes, table: pd.DataFrame, y: str, err: pd.Series, epochs: Sequence[Any],
                  batches: Sequence[Any], labelled: bool = False, ylabel: str = PAPER_YLABEL) -> None:
    """Bars per batch size (one colour each, the same in both panels), grouped by epochs (Figure B.7's layout); a
    cell without a number draws no bar. `labelled`: each bar carries its number (the paper's few cells)."""
    values = table[y].astype(float)
    if values.isna().all():
        style.mark_empty(ax)
        return
    group = {canon(e): i for i, e in enumerate(epochs)}
    width = 0.8 / len(batches)
    for i, (batch, color) in enumerate(zip(batches, sns.color_palette("colorblind", len(batches)))):
        part = table[(table["axis.batch_size"].map(canon) == canon(batch)) & values.notna()]
        if part.empty:
            continue
        x = [group[canon(e)] + (i - (len(batches) - 1) / 2) * width for e in part["axis.epochs"]]
        errors = np.nan_to_num(err[part.index].astype(float).to_numpy())
        bars = ax.bar(x, part[y].astype(float), width, yerr=errors if errors.any() else None, capsize=2,
                      color=color, label=f"{batch:g}")
        if labelled:
            ax.bar_label(bars, [_label(v, r) for v, r in zip(part[y].astype(float), part["read_as"])], fontsize=8)
    ax.set_xticks(range(len(epochs)), [f"{e:g}" for e in epochs])
    ax.set_xlabel("training epochs (paper units)")
    ax.set_ylabel(ylabel)
    low, high = np.nanmin(values), np.nanmax(values)
    ax.set_ylim(max(0.0, low - 0.3 * (high - low + 1)), high + 0.35 * (high - low + 1))   # room for the legend
    ax.legend(title="batch size", fontsize=8, title_fontsize=8, loc="upper center", ncol=len(batches))


@artefact("b9_batch_epochs", "b9_batch_epochs")
def figure_b7(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    """Figure B.7: linear evaluation on CIFAR-10 by batch size and training epochs (temperature 0.5); bars per
    batch size, grouped by epochs."""
    table = compare(ours, published, B7_AXES)
    epochs = list(dict.fromkeys(table["axis.epochs"]))
    batches = list(dict.fromkeys(table["axis.batch_size"]))
    figure, ((left, right),) = style.panels(scale=scale_of(ours), title="Figure B.7 (CIFAR-10): batch size x epochs")
    _grouped_bars(left, table, "published", _paper_errors(table), epochs, batches, labelled=True)
    _grouped_bars(right, table, "ours_mean", table["ours_std"], epochs, batches, ylabel=ours_ylabel(ours))
    left.set_title(PAPER_TITLE)
    tables = views(ours, table, B7_AXES, "batch_size", "epochs", "B.7")
    notes = [MISSING_NOTE.format(fig="B.7", reading=", a reader's ~85 at batch 1024 and 100 epochs (secondary, low "
                                                      "confidence)")]
    return Artefact(figure, table, agreement(table), text_conclusions(table, B7_CHECKS, B7_STATES, B7_SOURCE),
                    tables=tables, notes=notes)


# ---- Figure B.8: temperature x batch size ----------------------------------------------------------------------
def tau_half_best_at_every_batch(cells: pd.DataFrame) -> Finding | Verdict:
    """reports/references.py's check (tau 0.5 minus tau 0.1, and minus tau 1.0) at each batch size that has all
    three temperatures; undecided with fewer than two such batch sizes."""
    findings = {}
    for batch in sorted({float(b) for b in cells["axis.batch_size"]}) if len(cells) else []:
        part = cells[cells["axis.batch_size"].astype(float) == batch].assign(**{"axis.loss.normalize": True})
        found = _tau_half_best(part)
        if isinstance(found, Finding):
            findings[batch] = found
    if len(findings) < 2:
        return undecided("needs temperatures " + ", ".join(f"{t:g}" for t in B8_TEMPERATURES)
                         + f" at two or more batch sizes; have all three at {len(findings)}")
    margins = tuple(replace(m, label=f"batch {b:g}, {m.label}") for b, f in findings.items() for m in f.margins)
    return Finding(margins, "; ".join(f"batch {b:g}: {f.evidence}" for b, f in findings.items()))


def tau_tenth_improves_with_batch(cells: pd.DataFrame) -> Finding | Verdict:
    """Margin: the slope of tau 0.1's cells over the steps of batch size."""
    part = cells[cells["axis.loss.temperature"].map(canon) == canon(0.1)] if len(cells) else cells
    if len(part) < 2:
        return undecided(f"needs temperature 0.1 at two or more batch sizes; have {len(part)}")
    part = part.assign(b=part["axis.batch_size"].astype(float)).sort_values("b")
    rho = spearman(part["b"], part["value"])
    return Finding((slope(part, "batch_size", "slope per batch step"),),
                   "τ=0.1: " + ", ".join(f"batch {b:g} {v:.1f}" for b, v in zip(part["b"], part["value"]))
                   + f"; Spearman(batch, top-1) = {rho:.2f}")


B8_CHECKS: tuple[tuple[str, Check], ...] = (
    ("τ = 0.5 is the best of {0.1, 0.5, 1.0} at every batch size (the paper: trained to convergence, > 300 epochs)",
     tau_half_best_at_every_batch),
    ("τ = 0.1 improves as the batch size grows", tau_tenth_improves_with_batch),
)


def _temperature_lines(ax: Axes, table: pd.DataFrame, y: str, err: pd.Series, batches: Sequence[Any],
                       labelled: bool = False, ylabel: str = PAPER_YLABEL) -> None:
    """One line per temperature (one colour each, the same in both panels) over the batch sizes in `batches`."""
    values = table[y].astype(float)
    if values.isna().all():
        style.mark_empty(ax)
        return
    position = {canon(b): i for i, b in enumerate(batches)}
    temperatures = list(dict.fromkeys(table["axis.loss.temperature"]))
    for temperature, color in zip(temperatures, sns.color_palette("colorblind", len(temperatures))):
        part = table[(table["axis.loss.temperature"].map(canon) == canon(temperature)) & values.notna()]
        if part.empty:
            continue
        x = [position[canon(b)] for b in part["axis.batch_size"]]
        errors = np.nan_to_num(err[part.index].astype(float).to_numpy())
        ax.errorbar(x, part[y].astype(float), yerr=errors if errors.any() else None, marker="o", capsize=3,
                    color=color, label=f"{temperature:g}")
        if labelled:
            for xi, v, r in zip(x, part[y].astype(float), part["read_as"]):
                ax.annotate(_label(v, r), (xi, v), xytext=(0, 6), textcoords="offset points", ha="center",
                            fontsize=8)
    ax.set_xticks(range(len(batches)), [f"{b:g}" for b in batches])
    ax.set_xlabel("batch size (paper units)")
    ax.set_ylabel(ylabel)
    ax.legend(title="temperature τ", fontsize=8, title_fontsize=8)


@artefact("b9_temperature_batch", "b9_temperature_batch")
def figure_b8(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    """Figure B.8, panel (b) (> 300 epochs): linear evaluation on CIFAR-10 by temperature and batch size; one line
    per temperature over batch size."""
    table = compare(ours, published, B8_AXES)
    batches = list(dict.fromkeys(table["axis.batch_size"]))
    figure, ((left, right),) = style.panels(scale=scale_of(ours),
                                           title="Figure B.8 (CIFAR-10): temperature x batch size, > 300 epochs")
    _temperature_lines(left, table, "published", _paper_errors(table), batches, labelled=True)
    _temperature_lines(right, table, "ours_mean", table["ours_std"], batches, ylabel=ours_ylabel(ours))
    left.set_title(PAPER_TITLE)
    tables = views(ours, table, B8_AXES, "loss.temperature", "batch_size", "B.8")
    notes = [MISSING_NOTE.format(fig="B.8", reading="")]
    return Artefact(figure, table, agreement(table), text_conclusions(table, B8_CHECKS, PAPER_STATES, B8_SOURCE),
                    tables=tables, notes=notes)
