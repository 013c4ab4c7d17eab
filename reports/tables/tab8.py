"""Table 8 (ResNet-50 4x) and Table B.5 (the same with ResNet-50 1x): the pretrained encoder transferred to
natural-image datasets, by linear evaluation (frozen features) and by fine-tuning, beside the supervised baseline
(Section 4.3, Appendix B.8). One builder serves both (`TransferTable` says which).

The delta table holds one row per (dataset, protocol) in the metric the paper prints for that dataset (top-1, or
mean per-class accuracy for Aircraft, Pets, Caltech-101 and Flowers); our runs compute both. VOC2007 (11-point mAP,
multi-label) is not declared. The paper's layout is shown as a table of its own: its SimCLR, supervised and
random-init rows beside ours. Conclusions: fine-tuning beats linear evaluation on average over the datasets (both
sides), and for Table 8, where Section 4.3 states it, fine-tuned SimCLR is ahead of the supervised baseline on at
least as many datasets as it is behind (the paper's side here; ours in tab8_baselines, which reads the supervised
runs of table8_transfer_supervised beside these). Each declared dataset without a finished run gets one line in the
notes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import seaborn as sns

from registry.discover import get_experiment
from registry.published import load_table
from reports import style
from reports.artefacts import Artefact, artefact, scale_of
from reports.claims import Conclusion, Finding, Verdict, conclude, contrast, judged, noise_of, undecided
from reports.compare import agreement, aggregate, canon, compare
from reports.noise import Margin
from reports.published import axis_column, parse_value

from matplotlib.axes import Axes  # noqa: E402  (after reports.style chose the Agg backend)

AXIS = "eval.transfer_dataset"
# Our protocol name (in the metric) -> the CSV's protocol column.
PROTOCOLS = {"linear": "linear", "finetune": "fine-tuned"}
# The CSV's metric suffix -> how the paper's column is headed.
KINDS = {"top1": "top-1", "mean_per_class_acc": "mean per-class", "11pt_mAP": "11-pt mAP"}
PAPER_METHODS = ("SimCLR (ours)", "Supervised", "Random init")
UNSUPPORTED = {"VOC2007": "the paper reports its 11-point mAP (multi-label), which the transfer protocol does not "
                          "compute"}


@dataclass(frozen=True)
class TransferTable:
    """One of the paper's transfer tables: its SimCLR experiment, the baselines' experiment and its rows' label in
    table8_transfer.csv."""
    key: str                    # the SimCLR artefact's key: "tab8"
    table: str                  # "Table 8"
    experiment: str             # SimCLR's runs
    baselines: str              # the supervised network's and random initialisation's runs
    # The paper's count of datasets where fine-tuned SimCLR is ahead of the supervised network, where it states one
    # (Section 4.3, for Table 8's 4x network); None: the claim is not the paper's for this table.
    ahead_claim: str | None = None


TABLE8 = TransferTable("tab8", "Table 8", "table8_transfer", "table8_transfer_supervised",
                       "significantly ahead on 5, behind on 2, tied on 5")
TABLE_B5 = TransferTable("tabB5", "Table B.5", "table_b5_transfer", "table_b5_transfer_supervised")


def metric_of(protocol: str, kind: str) -> str:
    return f"transfer_{protocol}_{kind}"


def split_metric(metric: str) -> tuple[str, str]:
    """"transfer_finetune_top1" -> ("finetune", "top1")."""
    protocol, _, kind = metric.removeprefix("transfer_").partition("_")
    return protocol, kind


def datasets(spec: TransferTable) -> dict[str, str]:
    """Our dataset name -> the paper's column, in the declaration's (the paper's) order."""
    return dict(get_experiment(spec.experiment).published.values[AXIS])


def paper_rows(spec: TransferTable) -> list[dict[str, str]]:
    """Every row of the table in the published CSV (all methods, all 12 datasets)."""
    return [r for r in load_table(get_experiment(spec.experiment).published.file)
            if r["table_or_figure"] == spec.table]


def paper_columns(spec: TransferTable) -> dict[str, str]:
    """The paper's dataset columns in its order -> the kind of number it prints there (top1, mean_per_class_acc,
    11pt_mAP)."""
    found: dict[str, str] = {}
    for row in paper_rows(spec):
        found.setdefault(row["transfer_dataset"], split_metric(row["metric"])[1])
    return found


def paper_value(rows: Sequence[dict[str, str]], column: str, protocol: str, method: str) -> float:
    found = [r for r in rows if r["transfer_dataset"] == column and r["protocol"] == PROTOCOLS[protocol]
             and r["method"] == method]
    return parse_value(found[0]["value"]) if found else math.nan


# ---- the cells the conclusions read ---------------------------------------------------------------------------
def check_cells(table: pd.DataFrame, side: str) -> pd.DataFrame:
    """One row per (dataset, protocol) of `side` ("published" or "ours_mean"): dataset, protocol, value, runs;
    cells without a number dropped."""
    records = []
    for _, row in table.iterrows():
        runs = row["ours_runs"] if side == "ours_mean" else 1
        records.append({"dataset": row[axis_column(AXIS)], "protocol": split_metric(row["metric"])[0],
                        "value": float(row[side]), "runs": runs})
    cells = pd.DataFrame(records, columns=["dataset", "protocol", "value", "runs"])
    return cells[cells["value"].notna() & (cells["runs"] > 0)].reset_index(drop=True)


def finetune_beats_linear(cells: pd.DataFrame) -> Finding | Verdict:
    """Margin: the mean over datasets with both numbers of fine-tuned minus linear."""
    wide = cells.pivot_table(index="dataset", columns="protocol", values="value", sort=False)
    if not {"linear", "finetune"} <= set(wide.columns):
        return undecided("needs a dataset with both a linear and a fine-tuned number")
    both = wide.dropna(subset=["linear", "finetune"])
    if both.empty:
        return undecided("needs a dataset with both a linear and a fine-tuned number")
    names = list(both.index)
    rows = pd.concat([cells[(cells["dataset"] == d) & (cells["protocol"] == p)] for p in ("finetune", "linear")
                      for d in names])
    n = len(names)
    margin = contrast(rows, [1 / n] * n + [-1 / n] * n, "mean fine-tuned - linear")
    ahead = int((both["finetune"] > both["linear"]).sum())
    return Finding((margin,), f"fine-tuned ahead on {ahead} of {n} dataset(s); mean fine-tuned "
                              f"{both['finetune'].mean():.1f} vs linear {both['linear'].mean():.1f}")


def simclr_vs_supervised_finetuned(rows: Sequence[dict[str, str]], names: Sequence[str]) -> Finding | Verdict:
    """The paper's side of "fine-tuned, SimCLR is ahead of the supervised baseline on at least as many datasets as
    it is behind": margin = datasets ahead - datasets behind (+0.5, so that a draw holds)."""
    pairs = [(paper_value(rows, c, "finetune", "SimCLR (ours)"), paper_value(rows, c, "finetune", "Supervised"))
             for c in names]
    pairs = [(s, v) for s, v in pairs if not (math.isnan(s) or math.isnan(v))]
    if not pairs:
        return undecided("needs fine-tuned SimCLR and supervised numbers")
    ahead, behind = sum(s > v for s, v in pairs), sum(s < v for s, v in pairs)
    return Finding((Margin(ahead - behind + 0.5, 0.0, "datasets ahead - behind + 1/2"),),
                   f"fine-tuned SimCLR ahead of supervised on {ahead}, behind on {behind}, level on "
                   f"{len(pairs) - ahead - behind} of {len(pairs)} datasets")


def transfer_conclusions(spec: TransferTable, table: pd.DataFrame) -> list[Conclusion]:
    paper, ours = check_cells(table, "published"), check_cells(table, "ours_mean")
    conclusions = [conclude("fine-tuning beats linear evaluation, on average over the datasets",
                            finetune_beats_linear, paper, ours, noise_of(table))]
    if spec.ahead_claim:
        baselines = f"{spec.key}_baselines"
        conclusions.append(Conclusion(
            "fine-tuned, SimCLR is ahead of the supervised baseline on at least as many datasets as it is behind (the "
            f"paper: {spec.ahead_claim})",
            judged(simclr_vs_supervised_finetuned(paper_rows(spec), list(datasets(spec).values())), None),
            undecided(f"the supervised runs are another experiment's: {baselines} judges ours (python -m registry "
                      f"report {baselines})")))
    return conclusions


# ---- views ---------------------------------------------------------------------------------------------------
def _ours_by_dataset(ours: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Our mean of each transfer metric per dataset (canonical name -> {metric: mean, "runs": n})."""
    found: dict[Any, dict[str, float]] = {}
    for protocol in PROTOCOLS:
        for kind in ("top1", "mean_per_class_acc"):
            metric = metric_of(protocol, kind)
            for _, row in aggregate(ours, (AXIS,), metric).iterrows():
                cell = found.setdefault(canon(row[axis_column(AXIS)]), {})
                cell[metric] = float(row["ours_mean"])
                cell["runs"] = max(cell.get("runs", 0), int(row["ours_runs"]))
    return found


def paper_layout(spec: TransferTable, ours: pd.DataFrame) -> pd.DataFrame:
    """The table's layout: rows protocol x method (the paper's, then ours), one column per dataset headed by the
    kind of number the paper prints there; ours in that same kind, NaN where we have none."""
    rows, kinds, names = paper_rows(spec), paper_columns(spec), datasets(spec)
    by_column = {column: _ours_by_dataset(ours).get(canon(name), {}) for name, column in names.items()}
    headers = {c: f"{c} ({KINDS.get(k, k)})" for c, k in kinds.items()}
    records = []
    for protocol, shown in PROTOCOLS.items():
        for method in PAPER_METHODS:
            values = {headers[c]: paper_value(rows, c, protocol, method) for c in kinds}
            if not all(math.isnan(v) for v in values.values()):
                records.append({"protocol": shown, "method": f"{method} (paper)", **values})
        records.append({"protocol": shown, "method": "SimCLR (ours)",
                        **{headers[c]: by_column.get(c, {}).get(metric_of(protocol, k), math.nan)
                           for c, k in kinds.items()}})
    return pd.DataFrame(records)


def ours_every_metric(spec: TransferTable, ours: pd.DataFrame) -> pd.DataFrame:
    """Ours for every declared dataset and both kinds of number (mean over seeds), NaN where no run finished."""
    mine = _ours_by_dataset(ours)
    records = []
    for name, column in datasets(spec).items():
        cell = mine.get(canon(name), {})
        records.append({"dataset": column, "name": name, "runs": int(cell.get("runs", 0)),
                        **{f"{PROTOCOLS[p]} {KINDS[k]}": cell.get(metric_of(p, k), math.nan)
                           for p in PROTOCOLS for k in ("top1", "mean_per_class_acc")}})
    return pd.DataFrame(records)


def skipped_notes(spec: TransferTable, ours: pd.DataFrame) -> list[str]:
    """One line per dataset of the table without a number of ours: VOC2007 (not declared) and every declared dataset
    without a finished run."""
    scale = sorted(set(ours["scale"]))[0] if len(ours) and "scale" in ours else None
    at = f" at scale {scale}" if scale else ""
    mine = _ours_by_dataset(ours)
    on_scale = f" --scale {scale}" if scale else ""
    notes = [f"{column}: skipped, not declared: {why}." for column, why in UNSUPPORTED.items()]
    for name, column in datasets(spec).items():
        if canon(name) not in mine:
            # `run` looks for the data before anything trains and records nothing when it is missing, so `show`
            # lists such a run as pending: only `run` can say where it looked.
            run = f"python -m registry run {spec.experiment}{on_scale} --only '{name}*'"
            notes.append(f"{column} ({name}): skipped, no finished run{at}: not run yet, or its transfer data was not "
                         f"found (`{run}` looks for it before any pretraining and, where it is missing, says where "
                         f"it looked and how to provide the files; a run that failed is listed by `python -m registry "
                         f"show {spec.experiment}{on_scale}` with its error).")
    return notes


def size_note(spec: TransferTable, ours: pd.DataFrame) -> list[str]:
    """The number of transfer images our runs trained and tested on, one line for all datasets."""
    parts = []
    for name, column in datasets(spec).items():
        counts = [aggregate(ours, (AXIS,), f"transfer_{split}_images") for split in ("train", "test")]
        found = [c[c[axis_column(AXIS)].map(canon) == canon(name)] for c in counts]
        if all(len(f) for f in found):
            parts.append(f"{column} {found[0]['ours_mean'].iloc[0]:.0f} / {found[1]['ours_mean'].iloc[0]:.0f}")
    return ["Transfer images (train / test) of our runs: " + "; ".join(parts) + "."] if parts else []


def _grouped(ax: Axes, labels: Sequence[str], linear: Sequence[float], finetuned: Sequence[float]) -> None:
    """Per dataset, a bar for linear evaluation and one for fine-tuning."""
    values = np.asarray([*linear, *finetuned], dtype=float)
    if np.isnan(values).all():
        style.mark_empty(ax)
        return
    x, width = np.arange(len(labels)), 0.38
    colors = sns.color_palette("colorblind", 2)
    for offset, vals, color, name in ((-width / 2, linear, colors[0], "linear"),
                                      (width / 2, finetuned, colors[1], "fine-tuned")):
        ax.bar(x + offset, np.nan_to_num(np.asarray(vals, dtype=float)), width, color=color, label=name)
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylabel("accuracy (%; top-1 or mean per-class, as the paper prints)")
    ax.set_ylim(0, 112)
    ax.legend(fontsize=8, loc="upper center", ncol=2)


def transfer_artefact(spec: TransferTable, ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    names = datasets(spec)
    full = compare(ours, published, (AXIS,))
    table = full[full["read_as"] != "missing"].copy()
    order = {canon(n): i for i, n in enumerate(names)}
    position = [(order.get(canon(d), len(order)), list(PROTOCOLS).index(split_metric(m)[0]))
                for d, m in zip(table[axis_column(AXIS)], table["metric"])]
    table = table.iloc[sorted(range(len(table)), key=position.__getitem__)].reset_index(drop=True)

    figure, ((left, right),) = style.panels(scale=scale_of(ours), size=(7.0, 4.6),
                                           title=f"{spec.table}: transfer, linear evaluation and fine-tuning")
    for ax, column in ((left, "published"), (right, "ours_mean")):
        cells = check_cells(table, column).set_index(["dataset", "protocol"])["value"]
        _grouped(ax, list(names.values()), [cells.get((n, "linear"), math.nan) for n in names],
                 [cells.get((n, "finetune"), math.nan) for n in names])

    tables = {f"{spec.table} as printed, ours beside (each column in the kind of number the paper prints for it)":
              paper_layout(spec, ours),
              "ours, every declared dataset, both kinds of number (mean over seeds)": ours_every_metric(spec, ours)}
    notes = skipped_notes(spec, ours) + size_note(spec, ours)
    return Artefact(figure, table, agreement(table), transfer_conclusions(spec, table), tables=tables, notes=notes)


@artefact(TABLE8.key, TABLE8.experiment)
def tab8(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    """Table 8: linear evaluation and fine-tuning of the pretrained ResNet-50 (4x) on other datasets."""
    return transfer_artefact(TABLE8, ours, published)


@artefact(TABLE_B5.key, TABLE_B5.experiment)
def tabB5(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    """Table B.5: Table 8 with a standard ResNet-50 (1x)."""
    return transfer_artefact(TABLE_B5, ours, published)
