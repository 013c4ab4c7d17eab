"""One look for every figure: the Agg backend (no display, no GUI toolkit), one seaborn theme, one size,
paper and ours side by side, and PNG bytes out."""
from __future__ import annotations

import io

import matplotlib
import numpy as np

matplotlib.use("Agg")   # before pyplot or seaborn load: reports run headless, on laptops and cluster nodes

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

PANEL_SIZE = (6.0, 4.2)     # inches per panel
DPI = 100
PAPER_COLOR = "#4c72b0"
OURS_COLOR = "#dd8452"
NO_DATA = "no finished runs yet"
MARGIN_IN = {"left": 0.8, "right": 0.15, "bottom": 0.95, "top": 0.85, "between_rows": 1.3}

sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
# A report builds every section (one figure each, about 30) before it writes them, closing each as it is written
# (png_bytes): matplotlib's warning past 20 open figures would call that a leak on every full report.
plt.rcParams["figure.max_open_warning"] = 0


def panels(rows: int = 1, columns: int = 2, scale: str | None = None, title: str = "",
           size: tuple[float, float] = PANEL_SIZE) -> tuple[Figure, list[list[Axes]]]:
    """A figure of rows x columns panels; with two columns, the left one is titled as the paper's and the
    right one as ours at `scale`. Axes are not shared: our values are on another dataset's scale."""
    width, height = size[0] * columns, size[1] * rows
    figure, axes = plt.subplots(rows, columns, figsize=(width, height), squeeze=False)
    # Fixed margins in inches (room for tick labels, rotated category names, titles): tight_layout would
    # measure every text and take a third of the report's build time for the same result.
    figure.subplots_adjust(left=MARGIN_IN["left"] / width, right=1 - MARGIN_IN["right"] / width,
                           bottom=MARGIN_IN["bottom"] / height, top=1 - MARGIN_IN["top"] / height,
                           wspace=0.22, hspace=MARGIN_IN["between_rows"] * rows / height)
    if columns == 2:
        for row in axes:
            row[0].set_title(paper_title())
            row[1].set_title(ours_title(scale))
    if title:
        figure.suptitle(title, fontweight="bold")
    return figure, [list(row) for row in axes]


def paper_title() -> str:
    return "Paper (ImageNet, as published)"


def ours_title(scale: str | None) -> str:
    return f"Ours (scale: {scale})" if scale else "Ours"


def mark_empty(ax: Axes, message: str = NO_DATA) -> None:
    """An empty panel that says why it is empty rather than a blank square."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=12, color="0.4")


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG bytes; the figure is closed (reports build many and keep none open)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    plt.close(figure)
    return buffer.getvalue()


def axis_value(value: object) -> str:
    """An axis value as a table or tick label shows it: booleans (numpy's too) as yes/no, 2.0 as 2."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return str(value)


# Up to this many decimals a float axis shows each value exactly; past it, just enough to tell its values apart.
MAX_EXACT_DECIMALS = 8


def float_axis_labels(values) -> list[str]:
    """A float axis's values as one table column shows them: one decimal as the report's numbers have ("0.5",
    "2.0"), more where that would round a value, for the whole column alike (0.1, 0.1004 -> "0.1000", "0.1004"):
    two values of one axis never share a label."""
    values = [float(v) for v in values]
    finite = {v for v in values if np.isfinite(v)}
    exact = (d for d in range(1, MAX_EXACT_DECIMALS + 1) if all(float(f"{v:.{d}f}") == v for v in finite))
    apart = (d for d in range(MAX_EXACT_DECIMALS + 1, 18) if len({f"{v:.{d}f}" for v in finite}) == len(finite))
    decimals = next(exact, None) or next(apart, 17)
    return [f"{v:.{decimals}f}" if np.isfinite(v) else str(v) for v in values]
