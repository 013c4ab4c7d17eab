"""Every declared experiment, found through the registry: it resolves at every scale, evaluates the protocols its
metrics come from, maps each cell to at most one published row, states its provenance, and (slow) its smoke
view trains for real."""
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


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_smoke_view_trains_for_real(name, tmp_path):
    from registry.estimate import estimate
    from registry.launch import execute_run
    from simclr_core.evaluate.protocols import require_protocol_data

    def available(run) -> bool:          # e.g. Table 8's transfer datasets: most are not on this machine
        try:
            require_protocol_data(run.config)
        except OSError:
            return False
        return True

    # The cheapest run whose evaluation data is here: the experiment's plumbing end to end in the least time (the
    # widest ResNet-50 of Table B.2 took 143 s; every depth and width is built and stepped in test_encoders.py).
    runs = get_experiment(name).runs("smoke")
    run = min((r for r in runs if available(r)), key=lambda r: estimate(r.config, "cpu").hours, default=None)
    if run is None:
        pytest.skip(f"{name}: no smoke run has its evaluation data here (e.g. {runs[-1].run_id})")
    outcome = execute_run(run, tmp_path)
    assert outcome.state == "done", RunStore(tmp_path).error_text(run.run_id)
    final = RunStore(tmp_path).final(run.run_id)
    assert final["steps"] == 2 and 0.0 <= final["knn_top1"] <= 100.0
