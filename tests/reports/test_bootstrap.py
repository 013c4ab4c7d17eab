"""The bootstrap interval of the rank agreement against an exact enumeration of every resample, and the rank
correlations it resamples (vectorised over resamples) against independent computations."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from reports.bootstrap import RESAMPLES, bootstrap_intervals, resample_means
from reports.compare import agreement
from reports.ranks import kendall_tau_b, spearman

# 4 cells x 2 seeds; the paper ranks the cells 1..4
CELLS = [(1.0, 5.0), (2.0, 4.0), (4.0, 8.0), (0.0, 6.0)]   # no resample ties all four
PAPER = [1.0, 2.0, 3.0, 4.0]


def _pandas_spearman(x, y) -> float:
    """Spearman from pandas' own rank code (independent of reports.ranks)."""
    return pd.DataFrame({"x": x, "y": y}).corr(method="spearman").loc["x", "y"]


def _exact_distribution(cells, paper) -> list[tuple[float, float]]:
    """(statistic, probability) for every resample: a cell of 2 seeds (a, b) resamples to mean a with
    probability 1/4, (a + b) / 2 with 1/2 and b with 1/4; cells are independent."""
    choices = [[(a, 0.25), ((a + b) / 2, 0.5), (b, 0.25)] for a, b in cells]
    out: dict[float, float] = {}
    for combo in itertools.product(*choices):
        means = [m for m, _ in combo]
        key = round(_pandas_spearman(means, paper), 12)
        out[key] = out.get(key, 0.0) + math.prod(p for _, p in combo)
    return sorted(out.items())


def _exact_quantile(distribution, q: float) -> float:
    """The smallest value whose cumulative probability reaches q."""
    total = 0.0
    for value, p in distribution:
        total += p
        if total >= q - 1e-12:
            return value
    return distribution[-1][0]


def test_bootstrap_interval_matches_the_exact_resampling_distribution():
    exact = _exact_distribution(CELLS, PAPER)
    assert sum(p for _, p in exact) == pytest.approx(1.0) and len(exact) > 5
    interval = bootstrap_intervals(CELLS, PAPER, {"spearman": spearman})["spearman"]
    assert interval.resamples == RESAMPLES and interval.undefined == 0
    # the percentile bounds sit where the exact cumulative distribution crosses 2.5% and 97.5%, give or take
    # 1.5 points of probability (about 4 standard errors of an empirical quantile from 2000 draws)
    for bound, q in ((interval.low, 0.025), (interval.high, 0.975)):
        assert _exact_quantile(exact, q - 0.015) - 1e-9 <= bound <= _exact_quantile(exact, q + 0.015) + 1e-9


def test_resampled_statistics_follow_the_exact_probabilities():
    exact = dict(_exact_distribution(CELLS, PAPER))
    means = resample_means(CELLS, 20_000, np.random.default_rng(7))
    drawn = pd.Series(np.round(spearman(means, np.asarray(PAPER)), 12)).value_counts(normalize=True)
    assert set(drawn.index) <= set(exact)
    for value, p in exact.items():
        assert drawn.get(value, 0.0) == pytest.approx(p, abs=0.015)


def test_the_interval_is_reproducible_and_absent_with_one_seed_per_cell():
    first = bootstrap_intervals(CELLS, PAPER, {"kendall": kendall_tau_b})
    assert first == bootstrap_intervals(CELLS, PAPER, {"kendall": kendall_tau_b})    # fixed generator seed
    assert bootstrap_intervals([(1.0,), (2.0,), (3.0,)], [1, 2, 3], {"spearman": spearman}) is None
    table = pd.DataFrame({"published": [1.0, 2.0, 3.0], "ours_mean": [3.0, 1.0, 2.0],
                          "ours_values": [(3.0,), (1.0,), (2.0,)]})
    one = agreement(table)
    assert one.measured and one.intervals is None and one.seeds == "1 seed: no interval"


def test_agreement_interval_over_seeds_brackets_the_point_estimate():
    table = pd.DataFrame({"published": PAPER, "ours_mean": [np.mean(v) for v in CELLS], "ours_values": CELLS})
    a = agreement(table)
    assert a.seeds == "2 seeds per cell" and a.spearman == pytest.approx(_pandas_spearman(table["ours_mean"], PAPER))
    low, high = a.intervals["spearman"].low, a.intervals["spearman"].high
    assert low <= a.spearman <= high and low < high


def test_resamples_where_every_cell_ties_are_counted_not_hidden():
    # two cells that resample to the same mean half the time: (0, 2) and (1, 1) both give 1 when (0, 2) mixes
    interval = bootstrap_intervals([(0.0, 2.0), (1.0, 1.0)], [1.0, 2.0], {"spearman": spearman})["spearman"]
    assert 0 < interval.undefined < interval.resamples
    assert interval.undefined / interval.resamples == pytest.approx(0.5, abs=0.05)


def test_row_wise_correlations_equal_one_call_per_row():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 4, size=(50, 7)).astype(float)      # many ties, some constant rows
    y = np.array([3.0, 1.0, 2.0, 2.0, 5.0, 4.0, 0.0])
    rows_rho, rows_tau = spearman(x, y), kendall_tau_b(x, y)
    for row, rho, tau in zip(x, rows_rho, rows_tau):
        expected = _pandas_spearman(row, y) if len(set(row)) > 1 else math.nan
        assert (math.isnan(rho) and math.isnan(expected)) or rho == pytest.approx(expected)
        assert (math.isnan(tau) and math.isnan(kendall_tau_b(row, y))) or tau == pytest.approx(kendall_tau_b(row, y))


def test_correlations_against_scipy_when_it_is_installed():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 5, 30).astype(float), rng.normal(size=30).round(1)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert kendall_tau_b(x, y) == pytest.approx(stats.kendalltau(x, y).statistic)


def test_kendall_tau_b_with_ties_by_hand():
    # x = (1, 1, 2, 3), y = (1, 2, 2, 3): pairs (i<j): (1,2): x tie; (1,3) C; (1,4) C; (2,3): y tie; (2,4) C;
    # (3,4) C -> 4 concordant, 0 discordant; n0 = 6, one tie on each side -> 4 / sqrt(5 * 5) = 0.8
    assert kendall_tau_b([1, 1, 2, 3], [1, 2, 2, 3]) == pytest.approx(0.8)
    assert kendall_tau_b(np.array([[1, 1, 2, 3], [3, 2, 1, 0]]), [1, 2, 2, 3]).tolist() == pytest.approx(
        [0.8, -5 / math.sqrt(6 * 5)])
