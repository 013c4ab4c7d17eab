"""Every declared experiment, found through the registry: it resolves at every scale, evaluates the protocols its
metrics come from, maps each cell to at most one published row, states its provenance, and (slow) its smoke
view trains for real: a transfer experiment's (Table 8, B.5) on a synthetic stand-in of its transfer dataset where the
real one is not here, its report then built with that dataset's cells filled."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from registry import SCALES, get_experiment, list_experiments
from registry.declare import STAND_IN_PROTOCOLS
from registry.discover import declaring_module
from registry.published import load_table, published_cells
from registry.store import RunStore
from simclr_core.metric_names import protocol_for_metric

EXPERIMENTS = list_experiments()


def test_the_seven_paper_ablations_are_declared():
    assert set(EXPERIMENTS) >= {"augment_pairs", "color_strength", "model_width", "head_type", "loss_variant",
                                "temperature_norm", "batch_epochs"}


@pytest.mark.parametrize("name", EXPERIMENTS)
@pytest.mark.parametrize("scale", list(SCALES))
def test_resolves_at_every_scale_keeping_every_point(name, scale):
    experiment = get_experiment(name)
    runs = experiment.runs(scale)
    assert len(runs) == len(experiment.axes) * len(experiment.seeds_at(scale))
    assert len({r.run_id for r in runs}) == len(runs)
    assert all(r.run_id.startswith(f"{name}/") for r in runs)


@pytest.mark.parametrize("name", EXPERIMENTS)
@pytest.mark.parametrize("scale", list(SCALES))
def test_every_metric_has_its_protocol_evaluated(name, scale):
    experiment = get_experiment(name)
    for run in experiment.runs(scale, seeds=(0,)):
        for metric in experiment.all_metrics:
            protocol = protocol_for_metric(metric)
            assert protocol is not None, f"{name}: no protocol reports {metric!r}"
            assert protocol in run.config.eval.protocols or protocol in STAND_IN_PROTOCOLS, (run.run_id, metric)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_cell_maps_to_at_most_one_published_row(name):
    experiment = get_experiment(name)
    cells = published_cells(experiment)
    if experiment.published is None:
        assert cells == []
        return
    assert any(rows for _, _, rows in cells), f"{name}: no cell matches a row of {experiment.published.file}"
    for point, metric, rows in cells:
        assert len(rows) <= 1, f"{point}, {metric} matches {len(rows)} rows of {experiment.published.file}"
        if rows and not experiment.published.metrics:
            assert rows[0]["metric"] == experiment.metric


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_provenance_is_stated(name):
    experiment = get_experiment(name)
    module = declaring_module(name)
    doc = inspect.getdoc(module) or ""
    if experiment.published is None:          # an ablation of our own says what it asks
        assert "Question" in doc, f"{module.__name__}'s docstring states no 'Question'"
    else:
        assert "arXiv:2002.05709" in doc and "Claim" in doc and "Published numbers" in doc
        assert experiment.deviations and load_table(experiment.published.file)
    assert Path(module.__file__).stem == experiment.name   # one file per experiment, named for it


def transfer_dataset_of(run) -> str | None:
    """The transfer dataset a run evaluates on (its config's eval.transfer_dataset), None where it runs no transfer."""
    return run.config.eval.transfer_dataset if "transfer" in run.config.eval.protocols else None


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_smoke_view_trains_for_real(name, tmp_path, monkeypatch):
    from registry.estimate import estimate
    from registry.launch import execute_run
    from registry.store import load_results
    from reports.build import build_sections
    from reports.published import axis_column
    from simclr_core.evaluate.protocols import require_protocol_data
    from transfer_stand_in import make_transfer_stand_in

    def available(run) -> bool:
        try:
            require_protocol_data(run.config)
        except OSError:
            return False
        return True

    # The cheapest run whose evaluation data is here: the experiment's plumbing end to end in the least time (the
    # widest ResNet-50 of Table B.2 took 143 s; every depth and width is built and stepped in test_encoders.py).
    experiment = get_experiment(name)
    runs = experiment.runs("smoke")
    cheapest = sorted(runs, key=lambda r: estimate(r.config, "cpu").hours)
    run = next((r for r in cheapest if available(r)), None)
    stand_in = None
    if run is None and transfer_dataset_of(cheapest[0]) is not None:
        # Table 8's datasets are not on this machine: the cheapest run gets a tiny synthetic copy of its transfer
        # dataset in the Hub's layout, found through $SIMCLR_DATA_DIR as a user's download would be.
        run, data = cheapest[0], tmp_path / "data"
        stand_in = make_transfer_stand_in(data, transfer_dataset_of(run))
        monkeypatch.setenv("SIMCLR_DATA_DIR", str(data))
        assert available(run), f"{run.run_id}: the stand-in at {stand_in} is not found"
    if run is None:
        pytest.skip(f"{name}: no smoke run has its evaluation data here, and it is not a transfer dataset a stand-in "
                    f"can be made of (e.g. {runs[-1].run_id})")
    results = tmp_path / "results"
    outcome = execute_run(run, results)
    assert outcome.state == "done", RunStore(results).error_text(run.run_id)
    final = RunStore(results).final(run.run_id)
    assert final["steps"] == 2 and 0.0 <= final["knn_top1"] <= 100.0
    if transfer_dataset_of(run) is None:
        return
    # Every metric the experiment's report reads is in final.json, an accuracy, on the stand-in's images (or the real
    # ones where they are here).
    for metric in experiment.all_metrics:
        assert 0.0 <= final[metric] <= 100.0, (metric, final.get(metric))
    if stand_in is not None:
        assert final["transfer_source"].startswith(str(stand_in))
        assert (final["transfer_train_images"], final["transfer_test_images"]) == (16, 10)
    # ... and the report of its artefact, built from that results folder, fills that dataset's published cells.
    (section,) = build_sections(load_results(results), keys=[experiment.artefact], scales=["smoke"])
    table = section.artefact.compare
    ours = table[(table[axis_column("eval.transfer_dataset")] == transfer_dataset_of(run))
                 & table["ours_mean"].notna()]
    published = [(metric, rows) for point, metric, rows in published_cells(experiment)
                 if rows and point == run.point]
    assert len(ours) == len(published) > 0, ours
    assert sorted(ours["metric"]) == sorted(metric for metric, _ in published)
    assert ours["ours_mean"].map(lambda v: 0.0 <= v <= 100.0).all()
