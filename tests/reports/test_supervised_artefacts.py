"""The supervised baselines' artefacts (reports/tables/supervised.py) on results with known values: Table 1's
supervised rows, Table 1 with both methods side by side, Figure 7's crosses and Table B.3."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fake_results import long_form, write_results
from registry import get_experiment
from registry.store import load_results
from reports.build import build_sections
from reports.ranks import kendall_tau_b
from test_artefacts import build, published, verdicts

SUPERVISED = "supervised_top1"


def test_tab1_supervised_holds_when_colour_hurts_and_fails_when_it_helps():
    points = get_experiment("color_strength_supervised").points()       # s = 1/8, 1/4, 1/2, 1, 1 + blur
    falling = build("tab1_supervised", [(p, [v]) for p, v in zip(points, [77, 76, 75, 74, 73])], metric=SUPERVISED)
    assert verdicts(falling) == [("holds", "holds"), ("holds", "holds")]
    rising = build("tab1_supervised", [(p, [v]) for p, v in zip(points, [70, 71, 72, 73, 74])], metric=SUPERVISED)
    assert verdicts(rising) == [("holds", "fails"), ("holds", "fails")]
    assert rising.conclusions[1].ours.evidence.startswith("s=1 73.0 vs s=1 +blur 74.0")


def both_methods(simclr_values, supervised_values, seeds=1) -> pd.DataFrame:
    simclr = long_form("color_strength", [(p, [v + 0.1 * s for s in range(seeds)]) for p, v in
                                          zip(get_experiment("color_strength").points(), simclr_values)])
    supervised = long_form("color_strength_supervised",
                           [(p, [v - 0.1 * s for s in range(seeds)]) for p, v in
                            zip(get_experiment("color_strength_supervised").points(), supervised_values)],
                           metric=SUPERVISED)
    return pd.concat([simclr, supervised], ignore_index=True)


def test_table1_with_both_methods_checks_that_colour_helps_simclr_more():
    from reports.artefacts import ARTEFACTS

    build_both = ARTEFACTS["tab1_supervised_vs_simclr"].build
    # SimCLR gains 1 point per step of s, supervised loses 0.5: the claim holds; blur +2 vs -1 also.
    art = build_both(both_methods([60, 61, 62, 63, 65], [77, 76.5, 76, 75.5, 74.5]), published("tab1_supervised"))
    assert len(art.compare) == 10 and set(art.compare["axis.method"]) == {"SimCLR", "supervised"}
    assert set(art.compare.loc[art.compare["axis.method"] == "SimCLR", "metric"]) == {"linear_top1"}
    assert verdicts(art) == [("holds", "holds"), ("holds", "holds")]
    assert art.conclusions[0].ours.evidence.startswith("top-1 per step of s: SimCLR +1.00, supervised -0.50")
    # Ranked within each method (two different measures): with no ties, the mean of the two methods' own Kendall.
    per_method = [kendall_tau_b(cells["ours_mean"], cells["published"]) for _, cells in
                  art.compare.groupby("axis.method")]
    assert art.agreement.within == "method" and art.agreement.cells == 10
    assert art.agreement.kendall == pytest.approx(np.mean(per_method))
    # The supervised network 27 points worse than in the first build (as it trains at the cpu scale): each method's
    # ranking is unchanged, and so is the agreement, which a pooled ranking would not be.
    worse = build_both(both_methods([60, 61, 62, 63, 65], [50, 49.5, 49, 48.5, 47.5]), published("tab1_supervised"))
    assert worse.agreement.kendall == pytest.approx(art.agreement.kendall)
    assert kendall_tau_b(worse.compare["ours_mean"], worse.compare["published"]) < art.agreement.kendall - 0.5
    # Both gain alike from colour (the supervised even more): fails.
    same = build_both(both_methods([60, 61, 62, 63, 63], [70, 72, 74, 76, 76]), published("tab1_supervised"))
    assert verdicts(same) == [("holds", "fails"), ("holds", "within noise")]


def test_table1_with_both_methods_counts_each_experiment_s_runs_as_its_own(tmp_path):
    value = lambda name, point, seed: 70.0 if name == "color_strength_supervised" else 60.0  # noqa: E731
    write_results(tmp_path, "cpu", value, names=["color_strength", "color_strength_supervised"])
    sections = {s.key: s for s in build_sections(load_results(tmp_path), ["tab1_supervised_vs_simclr", "tab1",
                                                                          "tab1_supervised"])}
    assert (sections["tab1_supervised_vs_simclr"].done, sections["tab1_supervised_vs_simclr"].expected) == (10, 10)
    assert (sections["tab1"].done, sections["tab1"].expected) == (5, 5)                # neither reads the other's
    assert (sections["tab1_supervised"].done, sections["tab1_supervised"].expected) == (5, 5)
    both = sections["tab1_supervised_vs_simclr"].artefact.compare
    assert both.groupby("axis.method")["ours_mean"].first().to_dict() == {"SimCLR": 60.0, "supervised": 69.0}
    assert sections["tab1_supervised_vs_simclr"].title.startswith("Table 1, both methods")


def test_fig7_supervised_wider_is_better_unless_it_is_not():
    points = get_experiment("model_width_supervised").points()           # widths 1, 2, 4
    assert verdicts(build("fig7_supervised", [(p, [70 + p["width"]]) for p in points], metric=SUPERVISED)) == \
        [("holds", "holds")]
    assert verdicts(build("fig7_supervised", [(p, [70 - p["width"]]) for p in points], metric=SUPERVISED)) == \
        [("holds", "fails")]


def test_tab_b3_longer_training_helping_colour_and_blur_and_width():
    def value(point) -> float:
        gain = {"crop": 0.0, "crop+color": 0.5, "crop+color+blur": 1.0}[point["augmentation"]]
        # the augmentations' gain grows with training: -1 x gain at 90 epochs, +1 x gain at 1000
        sign = {90: -1.0, 500: 0.0, 1000: 1.0}[point["epochs"]]
        return 70 + 2 * point["width"] + sign * gain

    points = get_experiment("supervised_augment").points()
    art = build("tabB3", [(p, [value(p)]) for p in points], metric=SUPERVISED)
    assert verdicts(art) == [("holds", "holds"), ("holds", "holds")]
    longer = art.conclusions[0].ours
    assert "width 1: -1.0 at 90 epochs -> +1.0 at 1000" in longer.evidence
    assert longer.evidence.endswith("1000 minus 90 epochs +2.00")
    assert list(art.tables.values())[0].shape == (6, 5)      # (width, augmentation) rows x 3 epoch columns
    narrow_wins = build("tabB3", [(p, [value(p) - 10 * (p["width"] == 4)]) for p in points], metric=SUPERVISED)
    assert verdicts(narrow_wins)[1] == ("holds", "fails")
