"""Aggregation over seeds, the delta table, rank correlations against hand computations, and value lookup."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fake_results import long_form
from reports.claims import value_at
from reports.compare import agreement, aggregate, canon, compare, under_own_names, with_metric
from reports.ranks import average_ranks, kendall_tau_b, spearman


def test_canon_spells_each_value_once():
    assert canon(np.bool_(True)) is True and canon(False) is False
    assert canon(2) == canon(2.0) == canon(np.int64(2)) == 2.0
    assert canon("crop") == "crop" and canon(None) is None and canon(float("nan")) is None
    assert canon(["crop", 1]) == ("crop", 1.0)


def test_average_ranks_share_ties():
    assert average_ranks([10, 20, 20, 30]).tolist() == [1, 2.5, 2.5, 4]
    assert average_ranks([3, 1, 2]).tolist() == [3, 1, 2]


def test_rank_correlations_match_hand_computations():
    # one swapped pair out of four: rho = 1 - 6 * 2 / (4 * 15) = 0.8; tau = (5 - 1) / 6
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # ties: ranks x = (1, 2.5, 2.5, 4), y = (1, 2, 3.5, 3.5) -> rho = 3.75 / 4.5;
    # tau-b: 4 concordant, 0 discordant, one tie in each -> 4 / sqrt(5 * 5)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 3]) == pytest.approx(3.75 / 4.5)
    assert kendall_tau_b([1, 2, 2, 3], [1, 2, 3, 3]) == pytest.approx(0.8)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1) and kendall_tau_b([1, 2, 3], [3, 2, 1]) == -1
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3])) and math.isnan(kendall_tau_b([1, 1, 1], [1, 2, 3]))


def test_spearman_agrees_with_pandas_on_random_data_with_ties():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 6, 40).astype(float), rng.normal(size=40)
    y[:10] = np.round(y[:10])
    # DataFrame.corr ranks in pandas' own code (Series.corr would need scipy)
    expected = pd.DataFrame({"x": x, "y": y}).corr(method="spearman").loc["x", "y"]
    assert spearman(x, y) == pytest.approx(expected)


def _stratified_tau_b(x, y, groups) -> float:
    """Textbook tau-b over the pairs within a group, one pair at a time."""
    s = untied_x = untied_y = pairs = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            if groups[i] != groups[j]:
                continue
            dx, dy = np.sign(x[j] - x[i]), np.sign(y[j] - y[i])
            pairs, s = pairs + 1, s + dx * dy
            untied_x, untied_y = untied_x + (dx != 0), untied_y + (dy != 0)
    return s / math.sqrt(untied_x * untied_y)


def test_rank_correlations_within_groups_compare_no_two_groups():
    # Each group ranks exactly as the paper's; the groups sit the other way round from the paper's, so the pooled
    # correlations are negative and the stratified ones 1.
    x, y, groups = [1, 2, 3, 10, 11, 12], [11, 12, 13, 1, 2, 3], ["a", "a", "a", "b", "b", "b"]
    assert kendall_tau_b(x, y) < 0 and spearman(x, y) < 0
    assert kendall_tau_b(x, y, groups) == pytest.approx(1.0) and spearman(x, y, groups) == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 5, 30).astype(float), rng.integers(0, 7, 30).astype(float)     # with ties
    groups = rng.integers(0, 3, 30)
    assert kendall_tau_b(x, y, groups) == pytest.approx(_stratified_tau_b(x, y, groups), abs=1e-12)
    # Stratified Spearman: the Pearson correlation of ranks centred within each group.
    dx, dy = np.empty(30), np.empty(30)
    for g in range(3):
        cols = groups == g
        dx[cols] = average_ranks(x[cols]) - average_ranks(x[cols]).mean()
        dy[cols] = average_ranks(y[cols]) - average_ranks(y[cols]).mean()
    assert spearman(x, y, groups) == pytest.approx(float(np.corrcoef(dx, dy)[0, 1]), abs=1e-12)
    resamples = np.stack([x, x[::-1]])                     # both statistics take a batch of resamples
    assert kendall_tau_b(resamples, y, groups)[0] == pytest.approx(kendall_tau_b(x, y, groups))
    assert spearman(resamples, y, groups)[1] == pytest.approx(spearman(x[::-1], y, groups))
    assert math.isnan(kendall_tau_b([1, 2], [1, 2], ["a", "b"]))      # no pair within a group


def test_agreement_within_an_axis_ranks_each_of_its_values_apart():
    table = pd.DataFrame({"axis.method": ["a"] * 3 + ["b"] * 3, "published": [11.0, 12, 13, 1, 2, 3],
                          "ours_mean": [1.0, 2, 3, 10, 11, 12], "ours_values": [(1.0, 1.2), (2.0,), (3.0,),
                                                                                (10.0,), (11.0,), (12.0,)]})
    pooled, within = agreement(table), agreement(table, within="method")
    assert pooled.kendall < 0 and pooled.within == ""
    assert within.kendall == pytest.approx(1.0) and within.spearman == pytest.approx(1.0)
    assert within.within == "method" and within.intervals["kendall"].low == pytest.approx(1.0)
    ties = agreement(table.assign(ours_mean=[1.0, 1, 1, 2, 2, 2]), within="method")
    assert not ties.measured and "within each method" in ties.why_not


def test_agreement_needs_three_cells_with_both_numbers():
    table = pd.DataFrame({"published": [1.0, 2.0, 3.0, 4.0], "ours_mean": [1.0, 3.0, math.nan, 4.0]})
    a = agreement(table)
    assert a.cells == 3 and a.spearman == pytest.approx(1.0) and a.kendall == pytest.approx(1.0)
    b = agreement(table.iloc[:2])
    assert b.cells == 2 and not b.measured


def test_aggregate_is_mean_and_sample_std_over_seeds():
    ours = long_form("loss_variant", [({"loss.kind": "nt_xent", "loss.semi_hard": False}, [1.0, 2.0, 3.0]),
                                      ({"loss.kind": "nt_logistic", "loss.semi_hard": True}, [5.0])])
    agg = aggregate(ours, ("loss.kind", "loss.semi_hard"), "linear_top1")
    first, second = agg.iloc[0], agg.iloc[1]
    assert (first["ours_mean"], first["ours_std"], first["ours_runs"], first["seeds"]) == (2.0, 1.0, 3, (0, 1, 2))
    assert first["ours_values"] == (1.0, 2.0, 3.0) and second["ours_values"] == (5.0,)
    assert second["ours_mean"] == 5.0 and math.isnan(second["ours_std"]) and second["ours_runs"] == 1


def test_compare_joins_on_axis_values_whatever_their_dtype():
    published = pd.DataFrame({"axis.width": [1, 2, 4], "declared": True, "metric": "linear_top1",
                              "value": [50.0, 60.0, 65.0], "read_as": "printed", "uncertainty": 0.05,
                              "source": "paper"})
    # the results hold floats (a column with gaps becomes float64) and only two of the three points
    ours = long_form("model_width", [({"width": 1.0}, [40.0, 42.0]), ({"width": 4.0}, [50.0])])
    table = compare(ours, published, ("width",))
    assert table["ours_mean"].tolist()[0] == 41.0 and math.isnan(table["ours_mean"].iloc[1])
    assert table["delta"].tolist()[0] == -9.0 and table["delta"].tolist()[2] == -15.0
    assert table["ours_runs"].tolist() == [2, 0, 1]


def test_value_at_finds_a_cell_by_its_axis_values():
    cells = pd.DataFrame({"axis.head.kind": ["linear", "none"], "axis.head.out_dim": [128, 2048],
                          "value": [1.0, 2.0]})
    assert value_at(cells, head__kind="none", head__out_dim=2048.0) == 2.0
    assert math.isnan(value_at(cells, head__kind="none", head__out_dim=128))


def test_a_stand_in_takes_the_metrics_place_and_the_other_metrics_stay():
    smoke = pd.DataFrame({"run_id": ["a"] * 3, "metric": ["knn_top1", "finetune_top1_10pct", "wall_seconds"],
                          "value": [40.0, 30.0, 9.0]})
    ours, shown = with_metric(smoke, "linear_top1")
    assert shown == "knn_top1"
    assert dict(zip(ours["metric"], ours["value"])) == {"linear_top1": 40.0, "finetune_top1_10pct": 30.0,
                                                         "wall_seconds": 9.0}
    assert ours["stand_in"].tolist()[0] == "knn_top1" and ours["stand_in"].iloc[1:].isna().all()
    assert dict(zip(under_own_names(ours)["metric"], ours["value"])) == {"knn_top1": 40.0, "finetune_top1_10pct": 30.0,
                                                                          "wall_seconds": 9.0}
    assert with_metric(ours.assign(metric="linear_top1").iloc[:1], "linear_top1")[1] == "linear_top1"
