"""Appendix B.9's two artefacts (Figures B.7 and B.8) on synthetic results with known numbers: the paper's two
CIFAR-10 numbers beside our cells, our grids as the figures lay them out, and the B.9 text's conclusions holding or
failing on ours as constructed, while the paper's side stays its statement unless its own numbers decide."""
from __future__ import annotations

import pandas as pd
import pytest

import reports.tables  # noqa: F401  (registers the B.9 artefacts)
from fake_results import long_form
from registry import get_experiment
from reports.artefacts import ARTEFACTS
from reports.published import published_cells

BATCHES = (256, 512, 1024, 2048, 4096)
EPOCHS = (100, 300, 500, 1000)
TEMPERATURES = (0.1, 0.5, 1.0)
SEED_STEP = 0.2           # seed 1 = seed 0 + SEED_STEP: a pooled std of 0.14 at every cell
STATED = "stated in the text, no numbers: appendixB9_cifar10.csv, Figure B.{} text"


def build(key: str, value, seeds=(0, 1), published: pd.DataFrame | None = None, **kw):
    """The artefact `key` from ours = value(point) (+ SEED_STEP per seed) at every declared point where value is
    not None."""
    experiment = get_experiment(ARTEFACTS[key].experiment)
    cells = [(p, [value(p) + SEED_STEP * s for s in seeds]) for p in experiment.points() if value(p) is not None]
    published = published_cells(experiment) if published is None else published
    return ARTEFACTS[key].build(long_form(experiment.name, cells, **kw), published)


def verdicts(artefact) -> list[tuple[str, str]]:
    return [(c.paper.outcome, c.ours.outcome) for c in artefact.conclusions]


def b7_value(gain_per_step, level):
    """B.7 cells: level(batch) + gain_per_step(batch) x the epoch count's position (0 ... 3)."""
    return lambda p: level[p["batch_size"]] + gain_per_step[p["batch_size"]] * EPOCHS.index(p["epochs"])


AS_CLAIMED = b7_value({256: 4.0, 512: 3.5, 1024: 3.0, 2048: 2.5, 4096: 2.0},
                      {256: 50.0, 512: 52.0, 1024: 54.0, 2048: 55.0, 4096: 54.0})


# ---- Figure B.7 ----------------------------------------------------------------------------------------------
def test_b7_sets_the_papers_two_numbers_beside_our_cells():
    art = build("b9_batch_epochs", AS_CLAIMED)
    table = art.compare.set_index(["axis.batch_size", "axis.epochs"])
    assert len(table) == 20
    assert table.loc[(1024, 100), ["published", "read_as"]].tolist() == [85.0, "read_from_plot"]
    assert table.loc[(1024, 1000), ["published", "read_as"]].tolist() == [94.0, "printed"]
    assert table["published"].notna().sum() == 2
    assert table.loc[(1024, 1000), "ours_mean"] == pytest.approx(54.0 + 9.0 + SEED_STEP / 2)
    assert table.loc[(1024, 1000), "ours_runs"] == 2
    grid, knn = art.tables.values()
    grid = grid.set_index("batch_size")
    assert list(grid.columns) == list(EPOCHS)
    assert grid.loc[1024, 1000] == "63.1 ± 0.1 (paper 94.0)"
    assert grid.loc[1024, 100] == "54.1 ± 0.1 (paper ~85)"
    assert grid.loc[256, 300] == "54.1 ± 0.1"
    assert knn.set_index("batch_size").loc[4096, 500] == "-1.0 ± 0.0"      # long_form's kNN rows: -1 everywhere
    assert not art.agreement.measured                                      # two cells: no ranking to compare


def test_b7_conclusions_hold_on_ours_as_constructed_and_are_the_papers_statements():
    art = build("b9_batch_epochs", AS_CLAIMED)
    assert verdicts(art) == [("holds", "holds")] * 3
    for conclusion in art.conclusions:
        assert conclusion.paper.evidence == STATED.format(7)
        assert conclusion.reference == "CIFAR-10: appendixB9_cifar10.csv, Figure B.7 text"
    assert "batch 256 50.1 -> 62.1" in art.conclusions[0].ours.evidence
    assert "batch 256 gains +12.0, batch 4096 +6.0" in art.conclusions[1].ours.evidence


def test_b7_conclusions_fail_on_ours_as_constructed():
    # longer training hurts batch 256, large batches gain more, and 4096 beats 2048
    opposite = b7_value({256: -1.0, 512: 1.0, 1024: 2.0, 2048: 3.0, 4096: 4.0},
                        {256: 50.0, 512: 51.0, 1024: 52.0, 2048: 53.0, 4096: 54.0})
    assert verdicts(build("b9_batch_epochs", opposite)) == [("holds", "fails")] * 3


def test_b7_a_difference_inside_the_seed_noise_decides_nothing():
    flat = b7_value(dict.fromkeys(BATCHES, 0.0), {b: 50.0 + 0.01 * i for i, b in enumerate(BATCHES)})
    art = build("b9_batch_epochs", flat, seeds=(0, 1, 2))
    assert [c.ours.outcome for c in art.conclusions] == ["within noise"] * 3


def test_b7_needs_two_batch_sizes_at_both_ends_of_the_epochs():
    only_1024 = lambda p: 50.0 + p["epochs"] / 100 if p["batch_size"] == 1024 else None   # noqa: E731
    art = build("b9_batch_epochs", only_1024)
    assert verdicts(art) == [("holds", "undecided")] * 3
    assert "two or more batch sizes" in art.conclusions[0].ours.evidence


def test_the_papers_side_is_measured_where_its_own_numbers_decide():
    # had the figure been transcribed: a paper grid on which longer training hurts every batch size
    experiment = get_experiment("b9_batch_epochs")
    paper = published_cells(experiment)
    paper = paper.assign(value=[90.0 - e / 100 for e in paper["axis.epochs"]], read_as="printed")
    (first, *_) = build("b9_batch_epochs", AS_CLAIMED, published=paper).conclusions
    assert (first.paper.outcome, first.ours.outcome) == ("fails", "holds")
    assert not first.paper.evidence.startswith("stated")


def test_b7_figure_draws_the_papers_two_bars_beside_our_twenty():
    art = build("b9_batch_epochs", AS_CLAIMED)
    paper, ours = art.figure.axes
    assert paper.get_title() == "Paper (CIFAR-10): the figure is missing"
    assert len(paper.patches) == 2 and len(ours.patches) == 20
    assert sorted(round(p.get_height(), 1) for p in paper.patches) == [85.0, 94.0]


def test_at_smoke_scale_knn_stands_in_and_no_second_grid_repeats_it():
    experiment = get_experiment("b9_batch_epochs")
    ours = long_form(experiment.name, [(p, [AS_CLAIMED(p)]) for p in experiment.points()], scale="smoke")
    stand_in = ours[ours["metric"] == "linear_top1"].assign(stand_in="knn_top1")   # reports.build.with_metric's frame
    art = ARTEFACTS["b9_batch_epochs"].build(stand_in, published_cells(experiment))
    assert len(art.tables) == 1


# ---- Figure B.8 ----------------------------------------------------------------------------------------------
def b8_value(tenth, half=60.0, one=55.0):
    """B.8 cells: tau 0.1 from tenth(batch), tau 0.5 and 1.0 flat."""
    return lambda p: {0.1: tenth(p["batch_size"]), 0.5: half, 1.0: one}[p["loss.temperature"]]


def test_b8_grid_and_the_one_published_cell():
    art = build("b9_temperature_batch", b8_value(lambda b: 50.0 + BATCHES.index(b)))
    table = art.compare.set_index(["axis.loss.temperature", "axis.batch_size"])
    assert len(table) == 15 and table["published"].notna().sum() == 1
    assert table.loc[(0.5, 1024), "published"] == 94.0
    grid = art.tables[next(iter(art.tables))].set_index("loss.temperature")
    assert list(grid.columns) == list(BATCHES)
    assert grid.loc[0.5, 1024] == "60.1 ± 0.1 (paper 94.0)" and grid.loc[0.1, 4096] == "54.1 ± 0.1"
    paper, ours = art.figure.axes
    assert len(paper.containers) == 1 and len(ours.containers) == 3          # one line per temperature present


def test_b8_conclusions_hold_on_ours_as_constructed_and_are_the_papers_statements():
    art = build("b9_temperature_batch", b8_value(lambda b: 50.0 + BATCHES.index(b)))
    assert verdicts(art) == [("holds", "holds")] * 2
    for conclusion in art.conclusions:
        assert conclusion.paper.evidence == STATED.format(8)
        assert conclusion.reference == "CIFAR-10: appendixB9_cifar10.csv, Figure B.8 text"
    assert "batch 4096, 0.5 - 0.1: +6.00" in art.conclusions[0].ours.evidence


def test_b8_tau_tenth_overtaking_half_at_the_largest_batch_fails_the_first_claim_only():
    tenth = {256: 52.0, 512: 54.0, 1024: 56.0, 2048: 58.0, 4096: 61.0}
    art = build("b9_temperature_batch", b8_value(tenth.get))
    assert verdicts(art) == [("holds", "fails"), ("holds", "holds")]
    assert "batch 4096, 0.5 - 0.1: -1.00" in art.conclusions[0].ours.evidence
    assert "batch 2048, 0.5 - 0.1: +2.00" in art.conclusions[0].ours.evidence


def test_b8_tau_tenth_falling_with_batch_fails_the_second_claim():
    art = build("b9_temperature_batch", b8_value(lambda b: 50.0 - BATCHES.index(b)))
    assert verdicts(art) == [("holds", "holds"), ("holds", "fails")]


def test_b8_without_results_the_paper_states_and_ours_cannot_decide():
    art = build("b9_temperature_batch", lambda p: None)
    assert verdicts(art) == [("holds", "undecided")] * 2
    assert art.compare["ours_runs"].eq(0).all() and art.compare["ours_mean"].isna().all()


def test_a_reading_without_a_stated_bound_shows_as_the_rough_number_it_is():
    from reports.render import fmt_paper

    assert fmt_paper(85.0, "read_from_plot", float("nan")) == "~85 (plot)"     # Figure B.7's reader's "~85"
    assert fmt_paper(62.6, "read_from_plot", 0.2) == "62.6 ± 0.2 (plot)"
    assert fmt_paper(94.0, "printed", float("nan")) == "94.0"
