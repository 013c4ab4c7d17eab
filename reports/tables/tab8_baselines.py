"""Table 8 whole (tab8_baselines) and Table B.5 whole (tabB5_baselines): SimCLR's transfer beside the supervised
baseline and random initialisation, the paper's and ours.

Reads table8_transfer_supervised (a supervised network transferred like SimCLR's, and with eval.transfer_scratch the
same architecture fine-tuned from random initialisation) and table8_transfer (SimCLR); for Table B.5, their 1x
counterparts (table_b5_transfer_supervised, table_b5_transfer). The delta table holds every row of the paper's
table (SimCLR and supervised, linear and fine-tuned; random initialisation, fine-tuned), ours beside the paper's in
the kind of number it prints for each dataset, ranked within each row; its seed noise is the noise the conclusions
are judged against. Conclusions, each judged on the paper's numbers and on ours:
  - fine-tuned, SimCLR is ahead of the supervised baseline on at least as many datasets as it is behind; a dataset
    of ours counts as ahead or behind only where the difference exceeds the seed noise (the paper: significantly
    ahead on 5, behind on 2, tied on 5; Table 8 only, where Section 4.3 states it);
  - fine-tuned, each pretrained network (SimCLR, supervised) beats the same network trained from random
    initialisation, on average over the datasets.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import seaborn as sns

from registry.discover import get_experiment
from reports import style
from reports.artefacts import Artefact, artefact, scale_of
from reports.claims import Conclusion, Finding, Verdict, contrast, difference, judged, noise_of, undecided
from reports.compare import agreement, aggregate, canon, compare
from reports.noise import Margin, Noise
from reports.published import axis_column, published_cells
from reports.tables.tab8 import (AXIS, KINDS, PROTOCOLS, TABLE8, TABLE_B5, TransferTable, datasets, paper_columns,
                                 paper_rows, paper_value)

from matplotlib.axes import Axes  # noqa: E402  (after reports.style chose the Agg backend)

# The paper's method (its rows) -> whose experiment makes it (SimCLR's or the baselines') and its metrics' prefix.
METHODS = {"SimCLR (ours)": ("experiment", "transfer_{protocol}_"),
           "Supervised": ("baselines", "transfer_{protocol}_"),
           "Random init": ("baselines", "transfer_scratch_")}
# The protocols each method has a row for (random initialisation is only fine-tuned).
ROWS = (("linear", "SimCLR (ours)"), ("linear", "Supervised"), ("finetune", "SimCLR (ours)"),
        ("finetune", "Supervised"), ("finetune", "Random init"))
CELL_COLUMNS = ["dataset", "method", "protocol", "value", "std", "runs"]


def metric_for(method: str, protocol: str, kind: str) -> str:
    return METHODS[method][1].format(protocol=protocol) + kind


def experiment_of(spec: TransferTable, method: str) -> str:
    return getattr(spec, METHODS[method][0])


def shown(method: str) -> str:
    """The paper's method as our tables name it: "SimCLR (ours)" is the paper's own label for its method."""
    return method.removesuffix(" (ours)")


def row_label(protocol: str, method: str) -> str:
    """A row of the paper's table: "Random init, fine-tuned"."""
    return f"{shown(method)}, {PROTOCOLS[protocol]}"


# ---- the cells ------------------------------------------------------------------------------------------------
def paper_cells(spec: TransferTable) -> pd.DataFrame:
    """Every printed cell of the paper's rows in ROWS, one per (dataset, method, protocol)."""
    rows, columns = paper_rows(spec), paper_columns(spec)
    records = [{"dataset": column, "method": method, "protocol": protocol, "std": math.nan, "runs": 1,
                "value": paper_value(rows, column, protocol, method)}
               for column in datasets(spec).values() for protocol, method in ROWS if column in columns]
    cells = pd.DataFrame(records, columns=CELL_COLUMNS)
    return cells[cells["value"].notna()].reset_index(drop=True)


def our_cells(spec: TransferTable, ours: pd.DataFrame) -> pd.DataFrame:
    """Our mean, sample std and run count per (dataset, method, protocol), in the kind of number the paper prints
    for the dataset; each method's cells from the runs of its own experiment."""
    kinds, records = paper_columns(spec), []
    for protocol, method in ROWS:
        experiment = experiment_of(spec, method)
        runs = ours[ours["experiment"] == experiment] if len(ours) and "experiment" in ours else ours.iloc[0:0]
        for name, column in datasets(spec).items():
            metric = metric_for(method, protocol, kinds.get(column, "top1"))
            found = aggregate(runs, (AXIS,), metric)
            found = found[found[axis_column(AXIS)].map(canon) == canon(name)]
            if len(found):
                row = found.iloc[0]
                records.append({"dataset": column, "method": method, "protocol": protocol,
                                "value": float(row["ours_mean"]), "std": float(row["ours_std"]),
                                "runs": int(row["ours_runs"])})
    return pd.DataFrame(records, columns=CELL_COLUMNS)


def cell_of(cells: pd.DataFrame, dataset: str, method: str, protocol: str = "finetune") -> dict | None:
    found = cells[(cells["dataset"] == dataset) & (cells["method"] == method) & (cells["protocol"] == protocol)]
    return found.iloc[0].to_dict() if len(found) else None


# ---- the conclusions ------------------------------------------------------------------------------------------
def simclr_vs_supervised(spec: TransferTable, cells: pd.DataFrame, noise: Noise | None) -> Finding | Verdict:
    """Fine-tuned, SimCLR ahead of supervised on at least as many datasets as behind: margin = datasets ahead -
    datasets behind + 1/2 (a draw holds); a dataset whose difference lies within the noise counts as level."""
    outcomes = []
    for dataset in datasets(spec).values():
        simclr, supervised = cell_of(cells, dataset, "SimCLR (ours)"), cell_of(cells, dataset, "Supervised")
        if simclr is not None and supervised is not None:
            outcomes.append(difference(simclr, supervised).outcome(noise))
    if not outcomes:
        return undecided("needs a dataset with fine-tuned SimCLR and supervised numbers")
    ahead, behind = outcomes.count("holds"), outcomes.count("fails")
    level = len(outcomes) - ahead - behind
    return Finding((Margin(ahead - behind + 0.5, 0.0, "datasets ahead - behind + 1/2"),),
                   f"fine-tuned SimCLR ahead of supervised on {ahead}, behind on {behind}, level"
                   f"{' within noise' if noise is not None and noise.measured else ''} on {level} of "
                   f"{len(outcomes)} datasets")


def pretrained_beats_random_init(spec: TransferTable, method: str):
    """The check: mean over the datasets with both numbers of `method` fine-tuned minus random init fine-tuned."""
    def check(cells: pd.DataFrame) -> Finding | Verdict:
        pairs = [(cell_of(cells, d, method), cell_of(cells, d, "Random init")) for d in datasets(spec).values()]
        pairs = [p for p in pairs if None not in p]
        if not pairs:
            return undecided(f"needs a dataset with fine-tuned {shown(method)} and random-init numbers")
        n = len(pairs)
        rows = pd.DataFrame([p for pair in pairs for p in pair])
        margin = contrast(rows, [1 / n, -1 / n] * n, f"mean {shown(method)} - random init")
        ahead = sum(p["value"] > r["value"] for p, r in pairs)
        return Finding((margin,), f"ahead of random init on {ahead} of {n} dataset(s); mean "
                                  f"{np.mean([p['value'] for p, _ in pairs]):.1f} vs "
                                  f"{np.mean([r['value'] for _, r in pairs]):.1f}")
    return check


def baseline_conclusions(spec: TransferTable, paper: pd.DataFrame, ours: pd.DataFrame,
                         noise: Noise) -> list[Conclusion]:
    conclusions = []
    if spec.ahead_claim:            # stated by the paper for this table (Section 4.3: Table 8)
        conclusions.append(Conclusion(
            "fine-tuned, SimCLR is ahead of the supervised baseline on at least as many datasets as it is behind (the "
            f"paper: {spec.ahead_claim})",
            judged(simclr_vs_supervised(spec, paper, None), None),
            judged(simclr_vs_supervised(spec, ours, noise), noise)))
    for method, whose in (("SimCLR (ours)", "SimCLR's"), ("Supervised", "the supervised network's")):
        check = pretrained_beats_random_init(spec, method)
        conclusions.append(Conclusion(
            f"fine-tuned from {whose} weights, the network beats the same network trained from random "
            "initialisation, on average over the datasets", judged(check(paper), None), judged(check(ours), noise)))
    return conclusions


# ---- views ----------------------------------------------------------------------------------------------------
def layout(spec: TransferTable, paper: pd.DataFrame, ours: pd.DataFrame) -> pd.DataFrame:
    """Table 8's layout, every row of it: protocol x method, the paper's row then ours, one column per dataset
    headed by the kind of number the paper prints there."""
    names = datasets(spec).values()
    headers = {c: f"{c} ({KINDS.get(k, k)})" for c, k in paper_columns(spec).items() if c in names}
    records = []
    for protocol, method in ROWS:
        for side, cells in (("paper", paper), ("ours", ours)):
            record = {"protocol": PROTOCOLS[protocol], "method": f"{shown(method)} ({side})"}
            for column, header in headers.items():
                cell = cell_of(cells, column, method, protocol)
                record[header] = math.nan if cell is None else cell["value"]
            records.append(record)
    return pd.DataFrame(records)


def _fine_tuned_bars(ax: Axes, cells: pd.DataFrame, labels: Sequence[str]) -> None:
    """Per dataset, a fine-tuned bar for each of SimCLR, supervised and random initialisation."""
    methods = [m for p, m in ROWS if p == "finetune"]
    values = np.asarray([[(cell_of(cells, d, m) or {}).get("value", math.nan) for d in labels] for m in methods],
                        dtype=float)
    if np.isnan(values).all():
        style.mark_empty(ax)
        return
    x, width = np.arange(len(labels)), 0.27
    for i, (method, row, color) in enumerate(zip(methods, values, sns.color_palette("colorblind", len(methods)))):
        ax.bar(x + (i - 1) * width, np.nan_to_num(row), width, color=color, label=shown(method))
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylabel("fine-tuned accuracy (%)")         # top-1 or mean per-class, as the paper prints
    ax.set_ylim(0, 112)
    ax.legend(fontsize=8, loc="upper center", ncol=3)


def missing_notes(spec: TransferTable, cells: pd.DataFrame) -> list[str]:
    """One line naming, per dataset, the methods without a number of ours."""
    gaps = []
    for name, column in datasets(spec).items():
        absent = [shown(m) for m in METHODS
                  if not ((cells["dataset"] == column) & (cells["method"] == m)).any()]
        if absent:
            gaps.append(f"{column} ({name}): {', '.join(absent)}")
    if not gaps:
        return []
    return [f"No finished run of ours yet for: {'; '.join(gaps)} (SimCLR: python -m registry show "
            f"{spec.experiment}; the baselines: python -m registry show {spec.baselines})."]


def delta_table(spec: TransferTable, ours: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Every declared cell of both experiments (SimCLR's from its own declaration, the baselines' from `published`)
    with ours beside it, each tagged with its row of the paper's table (axis.row: "SimCLR, linear", ...), in the
    paper's order of rows and datasets."""
    parts = []
    simclr = spec.experiment
    for experiment, cells in ((simclr, published_cells(get_experiment(simclr))), (spec.baselines, published)):
        mine = ours[ours["experiment"] == experiment] if len(ours) and "experiment" in ours else ours
        part = compare(mine, cells, (AXIS,))
        row_of = {metric_for(m, p, k): row_label(p, m) for p, m in ROWS
                  if experiment_of(spec, m) == experiment for k in ("top1", "mean_per_class_acc")}
        parts.append(part.assign(**{axis_column("row"): part["metric"].map(row_of)}))
    table = pd.concat(parts, ignore_index=True)
    table = table[table["read_as"] != "missing"].reset_index(drop=True)
    rank = {row_label(p, m): i for i, (p, m) in enumerate(ROWS)}
    order = {canon(n): i for i, n in enumerate(datasets(spec))}
    position = [(rank[r], order.get(canon(d), len(order)))
                for r, d in zip(table[axis_column("row")], table[axis_column(AXIS)])]
    return table.iloc[sorted(range(len(table)), key=position.__getitem__)].reset_index(drop=True)


def baselines_artefact(spec: TransferTable, ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    """The table's SimCLR, supervised and random-initialisation rows, the paper's and ours, and the claims across
    them."""
    paper, mine = paper_cells(spec), our_cells(spec, ours)
    table = delta_table(spec, ours, published)
    names = list(datasets(spec).values())
    figure, ((left, right),) = style.panels(scale=scale_of(ours), size=(7.0, 4.6), title=f"{spec.table}: fine-tuned "
                                           "SimCLR, supervised and random initialisation")
    _fine_tuned_bars(left, paper, names)
    _fine_tuned_bars(right, mine, names)
    tables = {f"{spec.table} as printed, every method, ours beside (each column in the kind of number the paper "
              "prints for it)": layout(spec, paper, mine)}
    return Artefact(figure, table, agreement(table, within="row"),
                    baseline_conclusions(spec, paper, mine, noise_of(table)), tables=tables,
                    notes=missing_notes(spec, mine))


@artefact(f"{TABLE8.key}_baselines", TABLE8.baselines, also_reads=(TABLE8.experiment,),
          title="Table 8 whole: SimCLR transferred beside the supervised baseline and random initialisation")
def tab8_baselines(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    return baselines_artefact(TABLE8, ours, published)


@artefact(f"{TABLE_B5.key}_baselines", TABLE_B5.baselines, also_reads=(TABLE_B5.experiment,),
          title="Table B.5 whole (ResNet-50 1x): SimCLR transferred beside the supervised baseline and random "
                "initialisation")
def tabB5_baselines(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    return baselines_artefact(TABLE_B5, ours, published)
