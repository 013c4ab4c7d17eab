"""Which of the paper's numbers fit our runs, decided by the dataset the runs trained on (their resolved config).

An artefact's published cells are ImageNet numbers, except Appendix B.9's (CIFAR-10: the artefacts whose
published file is appendixB9_cifar10.csv). Runs on the published cells' dataset meet them in their own setting;
runs on anything else meet them as a trend, and every column and claim drawn from them says so ("ImageNet
trend"). For runs
on CIFAR-10 the paper also gives CIFAR-10 numbers (Appendix B.9, reports/published/appendixB9_cifar10.csv),
and those are checked as CIFAR-10 references where they exist:

  * the best linear top-1 on CIFAR-10, 94.0 (ResNet-50 with the CIFAR stem, batch 1024, about 1000 epochs):
    shown beside our best cell, for scale, not as a verdict;
  * "trained to convergence (>300 epochs) the optimal temperature in {0.1, 0.5, 1.0} is 0.5 regardless of
    batch size" (the text beside Figure B.8, whose numbers are not available): a claim on Table 5's cells.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pandas as pd

from registry.published import load_table
from reports.claims import (Check, Conclusion, Finding, Verdict, cell_at, cells_of, difference, judged, noise_of,
                            undecided)
from reports.compare import canon

IMAGENET = "imagenet"
CIFAR10 = ("cifar10", "cifar10_subset")       # the embedded subset is CIFAR-10 images
CIFAR10_FILE = "appendixB9_cifar10.csv"
IMAGENET_TREND = "ImageNet trend"
IMAGENET_SETTING = "ImageNet (the paper's setting)"
CIFAR10_TREND = "CIFAR-10 trend"
CIFAR10_SETTING = "CIFAR-10 (the paper's Appendix B.9 setting)"
# The labels under which published cells are the runs' own setting, so values may be compared as values.
OWN_SETTING = (IMAGENET_SETTING, CIFAR10_SETTING)


def comparison_label(datasets: Sequence[str], published_file: str = "") -> str:
    """How the artefact's published cells (ImageNet, or CIFAR-10 for `CIFAR10_FILE`) relate to runs on `datasets`."""
    if not datasets:
        return "the paper (no runs)"
    if published_file == CIFAR10_FILE:
        return CIFAR10_SETTING if list(datasets) == ["cifar10"] else CIFAR10_TREND
    return IMAGENET_SETTING if list(datasets) == [IMAGENET] else IMAGENET_TREND


def on_cifar10(datasets: Sequence[str]) -> bool:
    return bool(datasets) and set(datasets) <= set(CIFAR10)


@dataclass(frozen=True)
class PublishedNumber:
    value: float
    what: str
    source: str


def cifar10_best_linear() -> PublishedNumber:
    """Appendix B.9's best CIFAR-10 linear evaluation, from the published CSV."""
    row = next(r for r in load_table(CIFAR10_FILE)
               if r["item"] == "best SimCLR CIFAR-10 model" and r["metric"] == "linear_top1")
    brief = lambda text: text.partition(" (")[0]
    return PublishedNumber(float(row["value"]), f"{brief(row['encoder'])}, batch {row['batch_size']}, "
                                                f"{brief(row['pretrain_epochs'])} epochs per the CSV's source",
                           f"{CIFAR10_FILE}, {brief(row['table_or_figure'])}")


def best_linear_line(compare: pd.DataFrame, ours_metric: str) -> str | None:
    """Our best cell beside the paper's best CIFAR-10 linear evaluation (None when ours is not linear top-1)."""
    if ours_metric != "linear_top1" or not len(compare) or compare["ours_mean"].astype(float).isna().all():
        return None
    paper = cifar10_best_linear()
    top = compare.loc[compare["ours_mean"].astype(float).idxmax()]
    axes = ", ".join(f"{c.removeprefix('axis.')}={top[c]}" for c in compare.columns if c.startswith("axis."))
    return (f"CIFAR-10 reference: the paper's best linear top-1 on CIFAR-10 is {paper.value:.1f} ({paper.what}; "
            f"{paper.source}); our best cell is {top['ours_mean']:.1f} ({axes}). A scale, not a verdict: "
            "read it with what ran, above.")


# ---- CIFAR-10 claims ---------------------------------------------------------------------------------------
B8_TEMPERATURES = (0.1, 0.5, 1.0)
B8_SOURCE = f"{CIFAR10_FILE}, Figure B.8 text"


def _tau_half_best(cells: pd.DataFrame) -> Finding | Verdict:
    normalized = cells[cells["axis.loss.normalize"].map(canon) == True] if len(cells) else cells  # noqa: E712
    found = {t: cell_at(normalized, loss__temperature=t) for t in B8_TEMPERATURES}
    if any(c is None for c in found.values()):
        return undecided("needs l2-normalised cells at temperatures " + ", ".join(f"{t:g}" for t in B8_TEMPERATURES)
                         + "; missing " + ", ".join(f"{t:g}" for t, c in found.items() if c is None))
    half = found[0.5]
    return Finding(tuple(difference(half, found[t], f"0.5 - {t:g}:") for t in (0.1, 1.0)),
                   ", ".join(f"τ={t:g} {found[t]['value']:.1f}" for t in B8_TEMPERATURES))


# artefact key -> (claim, check) checked on runs on CIFAR-10, against what the paper states for CIFAR-10.
CIFAR10_CLAIMS: dict[str, tuple[tuple[str, Check], ...]] = {
    key: (("on CIFAR-10, τ = 0.5 is the best of {0.1, 0.5, 1.0} (with l2 norm; the paper: trained to "
           "convergence, > 300 epochs)", _tau_half_best),)
    for key in ("tab5", "tab5_sweep")
}
PAPER_STATES = Verdict("holds", f"stated in the text, no numbers: {B8_SOURCE}")


def cifar10_conclusions(key: str, compare: pd.DataFrame, experiment: str) -> list[Conclusion]:
    """The CIFAR-10 claims of artefact `key` judged on our cells (rows of `experiment` where the table mixes)."""
    claims = CIFAR10_CLAIMS.get(key, ())
    if not claims:
        return []
    table = compare[compare["experiment"] == experiment] if "experiment" in compare and len(compare) else compare
    ours, noise = cells_of(table, "ours_mean"), noise_of(table)
    return [Conclusion(claim, PAPER_STATES, judged(check(ours), noise), f"CIFAR-10: {B8_SOURCE}")
            for claim, check in claims]
