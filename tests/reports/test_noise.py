"""Verdicts against seed noise (reports/noise.py) on synthetic results with a known true gap and known noise,
exact ties, and rank agreement when every cell ties."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fake_results import long_form
from registry import get_experiment
from reports.artefacts import ARTEFACTS
from reports.claims import conclusions, difference
from reports.compare import agreement
from reports.noise import NOISE_SES, Noise, judge, pooled_noise
from reports.published import published_for

SIGMA = 1.0
SEEDS = 5
XENT = {"loss.kind": "nt_xent", "loss.semi_hard": False}


def _tab4(xent_mean: float, others_mean: float, seeds: int = SEEDS, rng_seed: int = 0, sigma: float = SIGMA):
    """Table 4 with NT-Xent at `xent_mean` and the best other loss at `others_mean` (the rest 20 lower), each
    seed run drawn with N(0, sigma) noise from a fixed generator; the check is "NT-Xent beats the others"."""
    rng = np.random.default_rng(rng_seed)
    cells = []
    for point in get_experiment("loss_variant").points():
        mean = xent_mean if point == XENT else others_mean if point["loss.kind"] == "nt_logistic" and \
            point["loss.semi_hard"] else others_mean - 20
        cells.append((point, list(mean + sigma * rng.standard_normal(seeds)) if seeds > 1 else [mean]))
    published = published_for(get_experiment("loss_variant"))
    return ARTEFACTS["tab4"].build(long_form("loss_variant", cells), published).conclusions[0].ours


@pytest.mark.parametrize("rng_seed", range(5))
def test_a_true_gap_of_zero_is_within_noise(rng_seed):
    verdict = _tab4(50.0, 50.0, rng_seed=rng_seed)
    assert verdict.outcome == "within noise", verdict.evidence
    assert verdict.note == ""


def test_a_gap_of_ten_sigma_holds_and_its_reverse_fails():
    assert _tab4(60.0, 50.0).outcome == "holds"
    assert _tab4(40.0, 50.0).outcome == "fails"


def test_the_threshold_is_two_standard_errors_of_the_difference():
    # 3 seeds at -1, 0, +1 around each mean: every cell's std is 1, so SE of a difference = sqrt(2/3)
    se = math.sqrt(2 / 3)

    def verdict(gap: float):
        cells = [(p, [m - 1, m, m + 1]) for p, m in zip(get_experiment("loss_variant").points(),
                                                        [30.0, 30.0, 50.0, 30.0, 50.0 + gap])]
        return ARTEFACTS["tab4"].build(long_form("loss_variant", cells),
                                       published_for(get_experiment("loss_variant"))).conclusions[0].ours
    assert verdict(NOISE_SES * se * 0.99).outcome == "within noise"
    assert verdict(NOISE_SES * se * 1.01).outcome == "holds"
    assert verdict(-NOISE_SES * se * 1.01).outcome == "fails"
    assert f"(2 SE = {NOISE_SES * se:.2f})" in verdict(0.5).evidence


@pytest.mark.parametrize("seeds", [1, 3])
def test_an_exact_tie_is_within_noise_never_a_failure(seeds):
    # the measured case: 24.0 vs 24.0 used to read "holds in ours: no"
    values = [24.0] * seeds
    cells = [(p, values if p == XENT or (p["loss.kind"] == "nt_logistic" and p["loss.semi_hard"]) else [10.0] * seeds)
             for p in get_experiment("loss_variant").points()]
    art = ARTEFACTS["tab4"].build(long_form("loss_variant", cells), published_for(get_experiment("loss_variant")))
    ours = art.conclusions[0].ours
    assert (ours.outcome, ours.note) == ("within noise", "exact tie")
    assert ours.text == "within noise (exact tie)"


def test_one_seed_decides_by_sign_and_says_noise_was_not_measured():
    ours = _tab4(50.5, 50.0, seeds=1)
    assert (ours.outcome, ours.note, ours.text) == ("holds", "1 seed: noise not measured",
                                                    "holds (1 seed: noise not measured)")
    assert _tab4(49.5, 50.0, seeds=1).outcome == "fails"


def test_pooled_noise_weights_cells_by_their_degrees_of_freedom_and_skips_single_runs():
    noise = pooled_noise([1.0, 2.0, math.nan, 5.0], [2, 3, 1, 1])
    assert (noise.cells, noise.dof) == (2, 3)
    assert noise.std == pytest.approx(math.sqrt((1 * 1.0 + 2 * 4.0) / 3))
    assert not pooled_noise([math.nan, math.nan], [1, 1]).measured


def test_a_claim_of_several_margins_fails_if_one_fails_and_holds_only_if_all_clear_the_noise():
    noise = Noise(1.0, 4, 8)
    cell = lambda v: {"value": v, "runs": 2}       # SE of a difference = 1, so 2 SE = 2
    clear, small, bad = difference(cell(5), cell(0)), difference(cell(1), cell(0)), difference(cell(0), cell(5))
    assert judge([clear, clear], noise) == ("holds", "")
    assert judge([clear, small], noise) == ("within noise", "")
    assert judge([small, bad], noise) == ("fails", "")


def test_the_paper_side_is_judged_by_sign():
    table = pd.DataFrame({"axis.loss.kind": ["nt_xent", "nt_logistic"], "axis.loss.semi_hard": [False, True],
                          "published": [63.9, 57.9], "ours_mean": [40.0, 40.0], "ours_std": [0.5, 0.5],
                          "ours_runs": [3, 3]})
    from reports.artefacts import _nt_xent_best

    (c,) = conclusions(table, [("NT-Xent best", _nt_xent_best)])
    assert c.paper.outcome == "holds" and c.paper.note == "" and "margin" not in c.paper.evidence
    assert (c.ours.outcome, c.ours.note) == ("within noise", "exact tie")


def test_rank_agreement_when_every_cell_ties_says_so():
    tied = pd.DataFrame({"published": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "ours_mean": [24.0] * 6,
                         "ours_values": [(24.0, 24.0)] * 6})
    a = agreement(tied)
    assert not a.measured and a.why_not == "undefined: all 6 of our cells tie (24), so they have no ranking"
    paper_tied = tied.assign(published=5.0, ours_mean=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert agreement(paper_tied).why_not.startswith("undefined: all 6 of the paper's cells tie")
    assert agreement(tied.iloc[:2]).why_not.startswith("not measured: 2 cell(s) with both numbers")
