"""Table 7 (top-5) and Table B.4 (top-1): "ImageNet accuracy of models trained with few labels" (Section 6):
SimCLR's ResNet-50 at widths 1x, 2x and 4x fine-tuned on 1% and on 10% of the labels.

The delta table holds the twelve cells (width x label fraction x top-1/top-5). The paper's layout is a table of its
own, one row per architecture, columns label fraction x metric, the paper's numbers beside ours; the other methods
of Tables 7 and B.4 (numbers the paper quotes, not run here) are reference rows in a second table. Each run also
trains a newly initialised network of its width on the same labelled images (the supervised baseline,
finetune_scratch_*), set beside the paper's "Supervised baseline" (ResNet-50 1x) in a third table. Conclusions, each
on top-5 and top-1 together: 10% of the labels beats 1% at every width; the wider network is better with 1% of the
labels, and with 10%; pretraining beats the supervised baseline trained on the same labels. The notes say how many
labelled images our runs fine-tuned on and how the subsets were chosen.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from registry.discover import get_experiment
from registry.published import load_table
from reports import style
from reports.artefacts import Artefact, _lines, _paper_errors, artefact, scale_of
from reports.claims import Conclusion, Finding, Verdict, conclude, difference, noise_of, undecided
from reports.compare import agreement, aggregate, canon, compare
from reports.published import axis_column, parse_value
from reports.tables.tab6 import OURS, architectures, width_cells

EXPERIMENT = "table7_semi_supervised"
AXIS = "width"
KINDS = {"finetune_top5": "top-5", "finetune_top1": "top-1"}
TABLES = {"finetune_top5": "Table 7", "finetune_top1": "Table B.4"}
FRACTIONS = ("1%", "10%")
WIDTHS = (1.0, 2.0, 4.0)


SCRATCH = "finetune_scratch_"


def metrics() -> dict[str, tuple[str, str]]:
    """The pretrained network's metrics -> (label fraction, CSV metric), from the declaration
    (finetune_top5_1pct -> ("1%", "finetune_top5"))."""
    spec = get_experiment(EXPERIMENT).published.metrics
    return {metric: (where["label_fraction"], where["metric"]) for metric, where in spec.items()
            if not metric.startswith(SCRATCH)}


def scratch(metric: str) -> str:
    """The supervised baseline's metric beside a pretrained one's: finetune_top5_1pct -> finetune_scratch_top5_1pct."""
    return metric.replace("finetune_", SCRATCH, 1)


def ranked() -> str:
    return get_experiment(EXPERIMENT).metric


def label(metric: str) -> str:
    """finetune_top5_1pct -> "1% top-5"; finetune_scratch_top5_1pct -> "1% top-5, from scratch"."""
    if metric.startswith(SCRATCH):
        return label(metric.replace(SCRATCH, "finetune_", 1)) + ", from scratch"
    fraction, kind = metrics()[metric]
    return f"{fraction} {KINDS[kind]}"


# ---- the cells the conclusions read ---------------------------------------------------------------------------
def _at(cells: pd.DataFrame, metric: str, width: float) -> dict[str, Any] | None:
    found = cells[(cells["metric"] == metric) & (cells["width"] == width)]
    return found.iloc[0].to_dict() if len(found) else None


def _metric(fraction: str, kind: str) -> str:
    return next(m for m, fk in metrics().items() if fk == (fraction, kind))


def more_labels_help(cells: pd.DataFrame) -> Finding | Verdict:
    """10% beats 1% at every width, top-5 and top-1: margins 10% - 1% per (metric, width)."""
    margins, detail, missing = [], [], []
    for kind, shown in KINDS.items():
        for width in WIDTHS:
            few, many = _at(cells, _metric("1%", kind), width), _at(cells, _metric("10%", kind), width)
            if few is None or many is None:
                missing.append(f"{width:g}x {shown}")
                continue
            margins.append(difference(many, few, f"{width:g}x {shown}: 10% - 1%"))
            detail.append(f"{width:g}x {shown} {few['value']:.1f} -> {many['value']:.1f}")
    if missing:
        return undecided(f"needs 1% and 10% at every width; missing {', '.join(missing)}")
    return Finding(tuple(margins), "1% -> 10%: " + "; ".join(detail))


def wider_is_better_at(fraction: str):
    """The check "wider is better with `fraction` of the labels", top-5 and top-1: margins 2x - 1x, 4x - 2x."""
    def check(cells: pd.DataFrame) -> Finding | Verdict:
        margins, detail, missing = [], [], []
        for kind, shown in KINDS.items():
            found = [_at(cells, _metric(fraction, kind), w) for w in WIDTHS]
            missing += [f"{w:g}x {shown}" for w, c in zip(WIDTHS, found) if c is None]
            if any(c is None for c in found):
                continue
            margins += [difference(b, a, f"{shown}: {wb:g}x - {wa:g}x")
                        for (wa, a), (wb, b) in zip(zip(WIDTHS, found), zip(WIDTHS[1:], found[1:]))]
            detail.append(f"{shown} " + ", ".join(f"{w:g}x {c['value']:.1f}" for w, c in zip(WIDTHS, found)))
        if missing:
            return undecided(f"needs every width with {fraction} of the labels; missing {', '.join(missing)}")
        return Finding(tuple(margins), f"{fraction} labels: " + "; ".join(detail))
    return check


def pretraining_beats_scratch(cells: pd.DataFrame) -> Finding | Verdict:
    """The pretrained network fine-tuned minus the supervised baseline trained from scratch on the same labels, per
    label fraction, metric and width where both have a number (the paper's baseline: ResNet-50 1x only)."""
    margins, detail = [], []
    for kind, shown in KINDS.items():
        for fraction in FRACTIONS:
            metric = _metric(fraction, kind)
            for width in WIDTHS:
                pretrained, baseline = _at(cells, metric, width), _at(cells, scratch(metric), width)
                if pretrained is None or baseline is None:
                    continue
                margins.append(difference(pretrained, baseline, f"{width:g}x {fraction} {shown}: pretrained - scratch"))
                detail.append(f"{width:g}x {fraction} {shown} {baseline['value']:.1f} -> {pretrained['value']:.1f}")
    if not margins:
        return undecided("needs a width with both the fine-tuned network and the baseline from scratch")
    return Finding(tuple(margins), "from scratch -> pretrained: " + "; ".join(detail))


def table7_conclusions(table: pd.DataFrame) -> list[Conclusion]:
    paper, ours, noise = width_cells(table, "published"), width_cells(table, "ours_mean"), noise_of(table)
    checks = [("10% of the labels beats 1% at every width (top-5 and top-1)", more_labels_help)]
    checks += [(f"wider is better with {f} of the labels: 1x < 2x < 4x (top-5 and top-1)", wider_is_better_at(f))
               for f in FRACTIONS]
    checks += [("pretraining beats the supervised baseline trained from scratch on the same labels (top-5 and top-1)",
                pretraining_beats_scratch)]
    return [conclude(claim, check, paper, ours, noise) for claim, check in checks]


# ---- views ---------------------------------------------------------------------------------------------------
def paper_layout(table: pd.DataFrame, from_scratch: bool = False) -> pd.DataFrame:
    """Tables 7 and B.4's SimCLR rows (`from_scratch`: the supervised baseline's, which the paper has for ResNet-50
    1x only): one row per architecture, label fraction x metric columns, paper and ours."""
    records = []
    for width, name in architectures(EXPERIMENT).items():
        row: dict[str, Any] = {"architecture": name}
        for kind in KINDS:
            for fraction in FRACTIONS:
                metric = _metric(fraction, kind)
                metric = scratch(metric) if from_scratch else metric
                cell = table[(table[axis_column(AXIS)].map(canon) == width) & (table["metric"] == metric)]
                for side, column in (("paper", "published"), ("ours", "ours_mean")):
                    row[f"{label(metric)} ({side})"] = float(cell[column].iloc[0]) if len(cell) else math.nan
        records.append(row)
    return pd.DataFrame(records)


def other_methods() -> pd.DataFrame:
    """The other methods of Tables 7 and B.4 as the paper quotes them (reference rows: not run here)."""
    records: dict[tuple[str, str], dict[str, Any]] = {}
    columns = [f"{f} {k}" for k in KINDS.values() for f in FRACTIONS]
    for r in load_table(get_experiment(EXPERIMENT).published.file):
        if r["method"] == OURS or r["table_or_figure"] != TABLES.get(r["metric"]):
            continue
        row = records.setdefault((r["method"], r["architecture"]), {
            "method": r["method"], "architecture": r["architecture"], **{c: math.nan for c in columns}})
        row[f"{r['label_fraction']} {KINDS[r['metric']]}"] = parse_value(r["value"])
    return pd.DataFrame(list(records.values()), columns=["method", "architecture", *columns])


def subset_notes(ours: pd.DataFrame) -> list[str]:
    """How many labelled images our runs fine-tuned on per fraction, and whether subsets came from files."""
    parts = []
    for fraction in FRACTIONS:
        counts = aggregate(ours, (AXIS,), f"finetune_examples_{fraction.rstrip('%')}pct")["ours_mean"]
        if len(counts):
            parts.append(f"{fraction}: " + " / ".join(f"{c:.0f}" for c in sorted(set(counts.astype(float)))))
    if not parts:
        return []
    key = "eval.finetune_subset_files"
    files = sorted({f for v in ours[key] if isinstance(v, (tuple, list)) for f in v}) if key in ours else []
    how = f"the images listed in {', '.join(files)}" if files else "class-balanced draws with each run's seed"
    return [f"Labelled images our runs fine-tuned on ({how}): " + "; ".join(parts) + "."]


@artefact("tab7", EXPERIMENT)
def tab7(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    """Table 7 / B.4: fine-tuning SimCLR's ResNet-50 (1x, 2x, 4x) on 1% and 10% of the labels."""
    table = compare(ours, published, (AXIS,))
    shown = table.assign(kind=table["metric"].map(label))
    figure, ((left, right),) = style.panels(scale=scale_of(ours),
                                           title="Table 7 / B.4: fine-tuning on 1% and 10% of the labels")
    for ax, y, err in ((left, "published", _paper_errors(shown)), (right, "ours_mean", shown["ours_std"])):
        _lines(ax, shown.assign(err=err), axis_column(AXIS), y, "err", "kind", [int(w) for w in WIDTHS],
               "ResNet-50 width multiplier", "fine-tuned accuracy (%)", "labels, metric")
    # Ranks over one metric: across fractions and top-1/top-5 they would agree by construction.
    agree = agreement(table[table["metric"] == ranked()].reset_index(drop=True))
    return Artefact(figure, table, agree, table7_conclusions(table),
                    tables={"Tables 7 (top-5) and B.4 (top-1) as printed (SimCLR rows), ours beside":
                            paper_layout(table),
                            "The supervised baseline trained from scratch on the same labels (the paper's: ResNet-50 "
                            "1x, quoted from Zhai et al. 2019), ours beside": paper_layout(table, from_scratch=True),
                            "Tables 7 and B.4's other methods, as the paper quotes them (reference; not run here)":
                            other_methods()},
                    notes=[f"Rank agreement is over the {label(ranked())} cells only."] + subset_notes(ours))
