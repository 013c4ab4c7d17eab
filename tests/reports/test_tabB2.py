"""Table B.2's artefact (reports/tables/tabB2.py) on synthetic results of both policies, the broader one
(table_b2_broader_augment) and the default one (table7_semi_supervised), with known numbers: the delta table, the
layout, and the verdicts of the two conclusions."""
from __future__ import annotations

import math

import pandas as pd
import pytest

import reports.tables  # noqa: F401  (registers the artefacts)
from registry import get_experiment
from reports.artefacts import ARTEFACTS
from reports.published import published_cells

BROADER = get_experiment("table_b2_broader_augment")
SHARED = ("finetune_top1_1pct", "finetune_top5_1pct", "finetune_top1_10pct", "finetune_top5_10pct")


def runs(experiment: str, values: dict[float, dict[str, float]], seeds=(0, 1)) -> list[dict]:
    """One row per (width, seed, metric); seed s adds 0.2 * s."""
    return [{"run_id": f"{experiment}/{width:g}-s{seed}", "experiment": experiment, "scale": "cpu", "seed": seed,
             "axis.width": width, "metric": metric, "value": value + 0.2 * seed}
            for width, metrics in values.items() for seed in seeds for metric, value in metrics.items()]


def results(broader: float, default: float, all_labels: float = 70.0, scratch: float = 60.0,
            widths=(1.0, 2.0, 4.0)) -> pd.DataFrame:
    """Every shared cell at `broader` for the broader policy and `default` for Table 7's runs; the broader runs'
    100% top-1 `all_labels` and their from-scratch network's `scratch`."""
    mine = {w: {**{m: broader for m in SHARED}, "finetune_top1_100pct": all_labels, "finetune_top5_100pct": 90.0,
                "finetune_scratch_top1_100pct": scratch, "finetune_scratch_top5_100pct": 85.0} for w in widths}
    theirs = {w: {m: default for m in SHARED} for w in widths}
    return pd.DataFrame(runs(BROADER.name, mine) + runs("table7_semi_supervised", theirs))


def build(ours: pd.DataFrame):
    return ARTEFACTS["tabB2"].build(ours, published_cells(BROADER))


def test_the_delta_table_holds_the_declared_cells_by_width_with_the_from_scratch_network_on_all_labels():
    table = build(results(50.0, 48.0)).compare
    assert len(table) == 22                 # 3 widths x 6, and from scratch (top-1, top-5) at 2x and 4x
    two = table[table["axis.width"] == 2.0].set_index("metric")
    assert two.loc["finetune_top1_100pct", "published"] == 79.1
    assert two.loc["finetune_scratch_top1_100pct", "published"] == 77.8
    assert two.loc["finetune_scratch_top1_100pct", "ours_mean"] == pytest.approx(60.1)
    assert "finetune_scratch_top1_100pct" not in set(table[table["axis.width"] == 1.0]["metric"])   # not printed
    layout = next(iter(build(results(50.0, 48.0)).tables.values())).set_index(["architecture", "side"])
    assert layout.loc[("ResNet-50 (4x)", "paper"), "1% top-5"] == 86.6
    assert layout.loc[("ResNet-50 (1x)", "ours"), "10% top-1"] == pytest.approx(50.1)
    assert math.isnan(layout.loc[("ResNet-50 (1x)", "paper"), "100% top-1, from scratch"])


def test_the_broader_policy_against_the_default_one_reads_both_experiments():
    art = build(results(50.0, 48.0))
    claims = [(c.paper.outcome, c.ours.outcome) for c in art.conclusions]
    assert claims == [("holds", "holds"), ("holds", "holds")]
    assert art.conclusions[0].paper.evidence == "broader ahead in 11 of 12 cell(s); mean 75.4 vs 74.8"
    assert art.conclusions[0].ours.evidence.startswith("broader ahead in 12 of 12 cell(s); mean 50.1 vs 48.1; margin "
                                                       "mean broader - default +2.00")
    worse = build(results(47.0, 48.0, all_labels=55.0, scratch=60.0))
    assert [c.ours.outcome for c in worse.conclusions] == ["fails", "fails"]
    assert worse.conclusions[1].ours.evidence.startswith("2x: 55.1 vs 60.1; 4x: 55.1 vs 60.1")   # the printed cells


def test_without_the_default_policys_runs_the_comparison_is_undecided_and_a_note_says_so():
    alone = results(50.0, 48.0)
    art = build(alone[alone["experiment"] == BROADER.name])
    assert art.conclusions[0].ours.outcome == "undecided" and art.conclusions[1].ours.outcome == "holds"
    assert art.notes == ["No run of table7_semi_supervised at this scale: the default policy's side of the first "
                         "conclusion has no number of ours (python -m registry run table7_semi_supervised)."]
