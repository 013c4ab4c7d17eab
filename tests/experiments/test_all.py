"""Every declared experiment, found through the registry: it resolves at every scale, maps each axis point to
exactly one published row, states its provenance, and (slow) its smoke view trains for real."""
from __future__ import annotations

import importlib
import inspect

import pytest

from registry import SCALES, get_experiment, list_experiments
from registry.published import load_table, published_cells
from registry.store import RunStore

EXPERIMENTS = list_experiments()
METRICS = {"linear_top1", "knn_top1"}


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
def test_every_point_maps_to_exactly_one_published_row(name):
    experiment = get_experiment(name)
    for point, rows in published_cells(experiment):
        assert len(rows) == 1, f"{point} matches {len(rows)} rows of {experiment.published.file}"
        assert rows[0]["metric"] == experiment.metric
        float(rows[0]["value"])                           # a number, not MISSING


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_provenance_is_stated(name):
    experiment = get_experiment(name)
    module = importlib.import_module(f"experiments.{name}")
    doc = inspect.getdoc(module) or ""
    assert "arXiv:2002.05709" in doc and "Claim" in doc and "Published numbers" in doc
    assert experiment.metric in METRICS and experiment.deviations
    assert load_table(experiment.published.file)
    assert module.__name__.rsplit(".", 1)[1] == experiment.name   # one file per experiment, named for it


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_smoke_view_trains_for_real(name, tmp_path):
    from registry.launch import execute_run

    run = get_experiment(name).runs("smoke")[-1]
    outcome = execute_run(run, tmp_path)
    assert outcome.state == "done", RunStore(tmp_path).error_text(run.run_id)
    final = RunStore(tmp_path).final(run.run_id)
    assert final["steps"] == 2 and 0.0 <= final["knn_top1"] <= 100.0
