"""A final.json entry that is not a number (NaN, infinite) is no metric: no cell averages it, counts it as a run or
resamples it, and the report names the run and the entry it left out."""
from __future__ import annotations

import math

import pandas as pd

from fake_results import write_run
from registry import get_experiment
from registry.store import RunStore, load_results
from reports.cli import run


def test_a_nan_metric_is_left_out_of_its_cell_and_named(tmp_path, capsys):
    store = RunStore(tmp_path / "results")
    values = [[40, 41, 42], [43, 44, 45], [50, math.nan, 52], [49, 50, 51], [55, 57, 59]]
    written = [(value, write_run(store, "loss_variant", "cpu", point, seed, value))
               for point, cell in zip(get_experiment("loss_variant").points(), values)
               for seed, value in enumerate(cell)]
    nan_run = [run_id for value, run_id in written if math.isnan(value)]
    assert len(nan_run) == 1

    results = load_results(tmp_path / "results")
    assert results["value"].map(math.isfinite).all()
    assert results.attrs["not_numbers"] == {nan_run[0]: "knn_top1 = nan, linear_top1 = nan"}   # kNN: value - 5

    out = tmp_path / "report"
    run(["tab4", "--results-dir", str(tmp_path / "results"), "--out", str(out), "--scale", "cpu"])
    cells = pd.read_csv(out / "tab4_cpu.csv")
    semi_hard_margin = cells[(cells["axis.loss.kind"] == "margin_triplet") & cells["axis.loss.semi_hard"]].iloc[0]
    assert semi_hard_margin["ours_runs"] == 2 and semi_hard_margin["ours_mean"] == 51.0
    assert semi_hard_margin["ours_values"] == "(50.0, 52.0)"
    assert cells["ours_runs"].tolist() == [3, 3, 2, 3, 3]
    report = (out / "report.md").read_text()
    assert f"{nan_run[0]}: knn_top1 = nan, linear_top1 = nan" in report
    assert f"{nan_run[0]}: knn_top1 = nan, linear_top1 = nan" in capsys.readouterr().err
