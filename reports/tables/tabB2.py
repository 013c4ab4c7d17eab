"""Table B.2: Appendix B.2's broader augmentations (Sobel, equalize, solarize, motion blur added to the default
policy), ResNet-50 1x / 2x / 4x fine-tuned on 1%, 10% and 100% of the labels.

The delta table holds the declared cells (width x label fraction x top-1/top-5, and the network trained from scratch
on all labels at 2x and 4x, which the paper states in the text). The paper's layout is a table of its own, one row
per width, the paper's numbers beside ours. Conclusions, each judged on the paper's numbers and on ours:
  - the broader policy beats the default one on average over the widths, label fractions (1%, 10%) and top-1 /
    top-5: the default policy's cells are Table 7's and Table B.4's, ours table7_semi_supervised's runs (read
    beside these);
  - fine-tuned on all the labels, the pretrained network beats the same network trained from scratch (top-1, at
    each width with both numbers).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import seaborn as sns

from registry.discover import get_experiment
from registry.published import load_table
from reports import style
from reports.artefacts import Artefact, artefact, scale_of
from reports.claims import Conclusion, Finding, Verdict, contrast, judged, noise_of, undecided
from reports.compare import agreement, aggregate, canon, compare
from reports.noise import Noise
from reports.published import axis_column, parse_value

from matplotlib.axes import Axes  # noqa: E402  (after reports.style chose the Agg backend)

EXPERIMENT = "table_b2_broader_augment"
DEFAULT = "table7_semi_supervised"           # the default policy's runs
AXIS = "width"
WIDTHS = (1.0, 2.0, 4.0)
FRACTIONS = {"1pct": "1%", "10pct": "10%", "100pct": "100%"}
KINDS = {"top1": "top-1", "top5": "top-5"}
# The cells both policies have: Table 7 (top-5) and Table B.4 (top-1) at 1% and 10%.
SHARED = tuple(f"finetune_{kind}_{pct}" for pct in ("1pct", "10pct") for kind in KINDS)
ALL_LABELS, FROM_SCRATCH = "finetune_top1_100pct", "finetune_scratch_top1_100pct"


def label(metric: str) -> str:
    """finetune_top5_10pct -> "10% top-5"; finetune_scratch_top1_100pct -> "100% top-1, from scratch"."""
    scratch = metric.startswith("finetune_scratch_")
    _, kind, pct = metric.replace("finetune_scratch_", "finetune_", 1).split("_")
    return f"{FRACTIONS[pct]} {KINDS[kind]}" + (", from scratch" if scratch else "")


def default_policy_paper(width: float, metric: str) -> float:
    """The paper's number for the default policy (Table 7's top-5, Table B.4's top-1, method "SimCLR (ours)")."""
    _, kind, pct = metric.split("_")
    architecture = get_experiment(EXPERIMENT).published.values[AXIS][int(width)]
    rows = [r for r in load_table(get_experiment(DEFAULT).published.file)
            if r["method"] == "SimCLR (ours)" and r["architecture"] == architecture
            and r["label_fraction"] == FRACTIONS[pct] and r["metric"] == f"finetune_{kind}"]
    return parse_value(rows[0]["value"]) if rows else math.nan


# ---- the cells ------------------------------------------------------------------------------------------------
def cells(table: pd.DataFrame, side: str) -> pd.DataFrame:
    """(width, metric, value, runs) of the delta table's `side` ("published" or "ours_mean"), numbers only."""
    runs = table["ours_runs"] if side == "ours_mean" else 1
    out = pd.DataFrame({"width": table[axis_column(AXIS)].map(canon).astype(float), "metric": table["metric"],
                        "value": table[side].astype(float), "runs": runs})
    return out[out["value"].notna() & (out["runs"] > 0)].reset_index(drop=True)


def default_cells(ours: pd.DataFrame, side: str) -> pd.DataFrame:
    """The default policy's (width, metric, value, runs) for SHARED: the paper's, or the mean of
    table7_semi_supervised's runs among `ours`."""
    records = []
    if side == "published":
        records = [{"width": w, "metric": m, "value": default_policy_paper(w, m), "runs": 1}
                   for w in WIDTHS for m in SHARED]
    else:
        runs = ours[ours["experiment"] == DEFAULT] if len(ours) and "experiment" in ours else ours.iloc[0:0]
        for metric in SHARED:
            for _, row in aggregate(runs, (AXIS,), metric).iterrows():
                records.append({"width": float(canon(row[axis_column(AXIS)])), "metric": metric,
                                "value": float(row["ours_mean"]), "runs": int(row["ours_runs"])})
    out = pd.DataFrame(records, columns=["width", "metric", "value", "runs"])
    return out[out["value"].notna()].reset_index(drop=True)


def _value(frame: pd.DataFrame, width: float, metric: str) -> dict | None:
    found = frame[(frame["width"] == width) & (frame["metric"] == metric)]
    return found.iloc[0].to_dict() if len(found) else None


# ---- the conclusions ------------------------------------------------------------------------------------------
def broader_beats_default(broader: pd.DataFrame, default: pd.DataFrame) -> Finding | Verdict:
    """Mean over the (width, metric) cells both policies have of broader - default."""
    pairs = [(_value(broader, w, m), _value(default, w, m)) for w in WIDTHS for m in SHARED]
    pairs = [p for p in pairs if None not in p]
    if not pairs:
        return undecided("needs a width and label fraction fine-tuned after both policies (ours: "
                         f"{EXPERIMENT} and {DEFAULT})")
    n = len(pairs)
    margin = contrast(pd.DataFrame([c for pair in pairs for c in pair]), [1 / n, -1 / n] * n,
                      "mean broader - default")
    ahead = sum(b["value"] > d["value"] for b, d in pairs)
    return Finding((margin,), f"broader ahead in {ahead} of {n} cell(s); mean "
                              f"{np.mean([b['value'] for b, _ in pairs]):.1f} vs "
                              f"{np.mean([d['value'] for _, d in pairs]):.1f}")


def pretrained_beats_scratch(frame: pd.DataFrame) -> Finding | Verdict:
    """Mean over the widths with both numbers of (fine-tuned on all labels - trained from scratch), top-1."""
    pairs = [(_value(frame, w, ALL_LABELS), _value(frame, w, FROM_SCRATCH)) for w in WIDTHS]
    pairs = [(w, p) for w, p in zip(WIDTHS, pairs) if None not in p]
    if not pairs:
        return undecided("needs a width with both the fine-tuned and the from-scratch top-1 on all labels")
    n = len(pairs)
    margin = contrast(pd.DataFrame([c for _, pair in pairs for c in pair]), [1 / n, -1 / n] * n,
                      "mean pretrained - from scratch")
    return Finding((margin,), "; ".join(f"{w:g}x: {p['value']:.1f} vs {s['value']:.1f}" for w, (p, s) in pairs))


def tab_b2_conclusions(table: pd.DataFrame, ours: pd.DataFrame, noise: Noise) -> list[Conclusion]:
    paper, mine = cells(table, "published"), cells(table, "ours_mean")
    return [
        Conclusion("the broader augmentations beat the default policy (Tables 7 and B.4), on average over the "
                   "widths, label fractions and top-1 / top-5",
                   judged(broader_beats_default(paper, default_cells(ours, "published")), None),
                   judged(broader_beats_default(mine, default_cells(ours, "ours_mean")), noise)),
        Conclusion("fine-tuned on all the labels, the pretrained network beats the same network trained from scratch "
                   "(top-1)", judged(pretrained_beats_scratch(paper), None),
                   judged(pretrained_beats_scratch(mine), noise)),
    ]


# ---- views ----------------------------------------------------------------------------------------------------
def layout(table: pd.DataFrame) -> pd.DataFrame:
    """One row per width and side (the paper's, ours), one column per declared metric."""
    metrics = list(dict.fromkeys(table["metric"]))
    records = []
    for width in WIDTHS:
        for side, column in (("paper", "published"), ("ours", "ours_mean")):
            frame = cells(table, column)
            record = {"architecture": f"ResNet-50 ({width:g}x)", "side": side}
            for metric in metrics:
                cell = _value(frame, width, metric)
                record[label(metric)] = math.nan if cell is None else cell["value"]
            records.append(record)
    return pd.DataFrame(records)


def _top1_bars(ax: Axes, frame: pd.DataFrame) -> None:
    """Per width, a top-1 bar for each label fraction and one for the network trained from scratch."""
    metrics = [f"finetune_top1_{pct}" for pct in FRACTIONS] + [FROM_SCRATCH]
    values = np.asarray([[(_value(frame, w, m) or {}).get("value", math.nan) for w in WIDTHS] for m in metrics],
                        dtype=float)
    if np.isnan(values).all():
        style.mark_empty(ax)
        return
    x, width = np.arange(len(WIDTHS)), 0.2
    for i, (metric, row, color) in enumerate(zip(metrics, values, sns.color_palette("colorblind", len(metrics)))):
        ax.bar(x + (i - 1.5) * width, np.nan_to_num(row), width, color=color, label=label(metric))
    ax.set_xticks(x, [f"R50 ({w:g}x)" for w in WIDTHS])
    ax.set_ylabel("fine-tuned top-1 (%)")
    ax.set_ylim(0, 112)
    ax.legend(fontsize=7, loc="upper center", ncol=2)


def default_runs_note(ours: pd.DataFrame) -> list[str]:
    runs = ours[ours["experiment"] == DEFAULT] if len(ours) and "experiment" in ours else ours.iloc[0:0]
    if len(runs):
        return []
    return [f"No run of {DEFAULT} at this scale: the default policy's side of the first conclusion has no number of "
            f"ours (python -m registry run {DEFAULT})."]


def ordered(table: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    position = [(float(canon(w)), list(metrics).index(m)) for w, m in zip(table[axis_column(AXIS)], table["metric"])]
    return table.iloc[sorted(range(len(table)), key=position.__getitem__)].reset_index(drop=True)


@artefact("tabB2", EXPERIMENT, also_reads=(DEFAULT,),
          title="Table B.2: broader augmentations, fine-tuning ResNet-50 1x / 2x / 4x on 1%, 10% and 100% of the "
                "labels (beside Table 7's default policy)")
def tabB2(ours: pd.DataFrame, published: pd.DataFrame) -> Artefact:
    """Table B.2 beside the paper's, and the broader policy against the default one."""
    mine = ours[ours["experiment"] == EXPERIMENT] if len(ours) and "experiment" in ours else ours
    table = compare(mine, published, (AXIS,))
    table = ordered(table[table["read_as"] != "missing"], get_experiment(EXPERIMENT).published_metrics)
    figure, ((left, right),) = style.panels(scale=scale_of(ours), size=(6.4, 4.2),
                                           title="Table B.2: broader augmentations, fine-tuned top-1")
    _top1_bars(left, cells(table, "published"))
    _top1_bars(right, cells(table, "ours_mean"))
    return Artefact(figure, table, agreement(table), tab_b2_conclusions(table, ours, noise_of(table)),
                    tables={"Table B.2 as printed, ours beside": layout(table)}, notes=default_runs_note(ours))
