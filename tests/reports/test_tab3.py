"""Table 3's artefact on synthetic results: ours = the paper's cells shifted by a known amount (off the paper's
diagonal, values only we have), so the delta table, the paper's layout, our full matrix and the verdicts of
the paper's conclusions are known by construction."""
from __future__ import annotations

import pandas as pd
import pytest

import reports.tables  # noqa: F401  (registers tab3)
from registry import get_experiment
from reports.artefacts import ARTEFACTS
from reports.published import published_cells, published_for

EXPERIMENT = get_experiment("transform_prediction")
TASKS = ("color", "rotation", "noise", "sobel")
DIAGONAL = {"color": "none", "rotation": "rotate", "noise": "noise", "sobel": "sobel"}
PAPER = {"color": (99.3, 97.4, 80), "rotation": (67.6, 25.6, 25), "noise": (99.5, 59.6, 50),
         "sobel": (96.6, 56.3, 50)}            # h, g(h), random guess: table3_transformation_prediction.csv
POINTS = ("none", "rotate", "noise", "sobel")
SEED_STEP = 0.2


def synthetic(change=None, seeds=(0, 1), points=POINTS) -> pd.DataFrame:
    """One row per (run, metric). On the paper's cell of a task: the paper's value - 5 (+ SEED_STEP x seed);
    the random guess: the paper's; elsewhere 30 + 3 x (point index) + task index (+ SEED_STEP x seed).
    `change(point, metric, value) -> value` edits a cell."""
    rows = []
    for p_index, point in enumerate(points):
        for seed in seeds:
            for t_index, task in enumerate(TASKS):
                h, gh, guess = PAPER[task]
                on_diagonal = DIAGONAL[task] == point
                values = {"h": h - 5 if on_diagonal else 30 + 3 * POINTS.index(point) + t_index,
                          "gh": gh - 5 if on_diagonal else 20 + t_index,
                          "random_guess": float(guess)}
                for representation, value in values.items():
                    metric = f"transform_{task}_{representation}"
                    value = value + (SEED_STEP * seed if representation != "random_guess" else 0.0)
                    value = change(point, metric, value) if change else value
                    rows.append({"run_id": f"transform_prediction/{point}-s{seed}",
                                 "experiment": "transform_prediction", "scale": "cpu", "seed": seed,
                                 "axis.added_transform": point, "metric": metric, "value": float(value)})
    return pd.DataFrame(rows)


def build(ours: pd.DataFrame):
    return ARTEFACTS["tab3"].build(ours, published_cells(EXPERIMENT))


def verdicts(art) -> dict[str, tuple[str, str]]:
    return {c.claim: (c.paper.outcome, c.ours.outcome) for c in art.conclusions}


def test_delta_table_holds_the_eight_paper_cells_in_the_papers_order():
    art = build(synthetic())
    table = art.compare
    assert table["metric"].tolist() == [f"transform_{t}_{r}" for t in TASKS for r in ("h", "gh")]
    assert table["axis.added_transform"].tolist() == [DIAGONAL[t] for t in TASKS for _ in range(2)]
    assert table["published"].tolist() == [v for t in TASKS for v in PAPER[t][:2]]
    assert table["delta"].tolist() == pytest.approx([-5 + SEED_STEP / 2] * 8)
    assert (table["ours_runs"] == 2).all()
    assert art.agreement.cells == 8 and art.agreement.spearman == pytest.approx(1.0)


def test_paper_layout_and_our_full_matrix():
    art = build(synthetic())
    layout, matrix = art.tables.values()
    assert layout.shape == (4, 8)
    rotation = layout.set_index("what to predict").loc["rotation"]
    assert rotation["added in pretraining"] == "rotate"
    assert (rotation["random guess (paper)"], rotation["random guess (ours)"]) == (25.0, 25.0)
    assert rotation["h (paper)"] == 67.6 and rotation["h (ours)"] == pytest.approx(67.6 - 5 + SEED_STEP / 2)
    assert rotation["g(h) (paper)"] == 25.6 and rotation["g(h) (ours)"] == pytest.approx(25.6 - 5 + SEED_STEP / 2)

    assert matrix.shape == (4, 1 + 8) and matrix["added in pretraining"].tolist() == list(POINTS)
    by_point = matrix.set_index("added in pretraining")
    assert by_point.loc["rotate", "rotation h"] == pytest.approx(67.6 - 5 + SEED_STEP / 2)    # the paper's cell
    assert by_point.loc["sobel", "color h"] == pytest.approx(30 + 3 * 3 + 0 + SEED_STEP / 2)   # ours only
    assert by_point.loc["none", "noise g(h)"] == pytest.approx(20 + 2 + SEED_STEP / 2)
    assert by_point.notna().all().all()


def test_conclusions_hold_on_both_sides_when_ours_follows_the_paper():
    art = build(synthetic())
    assert len(art.conclusions) == 6
    assert set(verdicts(art).values()) == {("holds", "holds")}
    rotation = next(c for c in art.conclusions if "rotation" in c.claim)
    assert "h 62.7 vs g(h) 20.7" in rotation.ours.evidence and "+42.00" in rotation.ours.evidence


def test_g_of_h_above_h_fails_that_tasks_check_only():
    raised = synthetic(lambda point, metric, v: v + 50 if (point, metric) == ("rotate", "transform_rotation_gh")
                       else v)
    found = verdicts(build(raised))
    failed = {claim for claim, (paper, ours) in found.items() if ours == "fails"}
    assert failed == {"g(h) loses information about rotation: accuracy on h exceeds g(h)"}
    assert all(paper == "holds" for paper, _ in found.values())
    # the mean gap over the tasks stays positive: (1.9 + 42 - 50 + 39.9 + 40.3) / 4 > 0
    assert found["g(h) loses information: accuracy on h exceeds g(h), averaged over the four tasks"][1] == "holds"


def test_h_at_random_guess_fails_the_random_guess_check():
    at_chance = synthetic(lambda point, metric, v: 49.0 if (point, metric) == ("noise", "transform_noise_h") else v)
    found = verdicts(build(at_chance))
    assert found["h keeps the transformation: h predicts every task above random guess"] == ("holds", "fails")
    assert found["g(h) loses information about orig. vs corrupted: accuracy on h exceeds g(h)"][1] == "fails"


def test_a_missing_pretraining_leaves_its_checks_undecided():
    art = build(synthetic(points=("none", "rotate", "noise")))
    found = verdicts(art)
    assert found["g(h) loses information about orig. vs Sobel filtered: accuracy on h exceeds g(h)"] == (
        "holds", "undecided")
    assert found["h keeps the transformation: h predicts every task above random guess"][1] == "undecided"
    assert sum(ours == "holds" for _, ours in found.values()) == 3
    matrix = list(art.tables.values())[1].set_index("added in pretraining")
    assert matrix.loc["sobel"].isna().all() and matrix.loc["none"].notna().all()


def test_no_results_show_the_paper_side_only():
    art = build(synthetic().iloc[0:0])
    assert {paper for paper, _ in verdicts(art).values()} == {"holds"}
    assert {ours for _, ours in verdicts(art).values()} == {"undecided"}
    assert not art.agreement.measured and len(art.figure.axes) == 2
    assert len(art.compare) == 8 and art.compare["ours_mean"].isna().all()


def test_published_cells_of_one_metric_only_are_refused():
    with pytest.raises(ValueError, match="published_cells"):
        ARTEFACTS["tab3"].build(synthetic(), published_for(EXPERIMENT))
