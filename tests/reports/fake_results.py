"""Results with metrics chosen by the test, without training: a results folder in the store's own format
(`write_results`), or the long-form table that `load_results` would make of one (`long_form`).

Runs are resolved like `Experiment.runs(scale)` minus the final `validate()`, which imports the training code
(and torch); the files are written by `RunStore` itself, so `load_results` reads them as it reads real runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from registry.declare import Run
from registry.discover import get_experiment, list_experiments
from registry.run_id import make_run_id
from registry.scales import get_scale
from registry.store import RunStore
from simclr_core.metric_names import protocol_for_metric

CODE = {"git_sha": "0" * 40, "git_dirty": False}
# (experiment name, axis point, seed) -> linear top-1, or None to leave that run unfinished.
ValueFn = Callable[[str, Mapping[str, Any], int], "float | None"]


def write_run(store: RunStore, name: str, scale: str, point: Mapping[str, Any], seed: int, value: float,
              overrides: Mapping[str, Any] | None = None, final: Mapping[str, Any] | None = None) -> str:
    """One finished run; `overrides` change its config after the scale (as `registry run KEY=VALUE` does),
    `final` adds or replaces entries of its final.json (timings, device, processes)."""
    experiment = get_experiment(name)
    cfg = experiment.resolve(get_scale(scale), point, seed, overrides)
    run_id = make_run_id(name, point, cfg)
    store.write_config(Run(run_id, name, scale, dict(point), cfg, dict(overrides or {})), CODE)
    # the metrics the run's protocols evaluate: linear_top1 = value, knn_top1 = value - 5 (smoke evaluates kNN
    # only), and each further metric of the experiment value - 1, value - 2, ... in declaration order
    metrics = {"linear_top1": value, "knn_top1": value - 5.0}
    extra = [m for m in experiment.all_metrics if m not in metrics]
    metrics.update({m: value - 1.0 - i for i, m in enumerate(extra)})
    store.write_final(run_id, {"device": "fake", **{k: v for k, v in metrics.items()
                                                     if protocol_for_metric(k) in cfg.eval.protocols},
                               **(final or {})})
    return run_id


def write_results(root: Path, scale: str, value: ValueFn, seeds: Sequence[int] = (0,),
                  names: Sequence[str] | None = None) -> list[str]:
    """One finished run per declared point and seed of each experiment in `names` (all by default)."""
    store = RunStore(root)
    written = []
    for name in names or list_experiments():
        for point in get_experiment(name).points():
            for seed in seeds:
                v = value(name, point, seed)
                if v is not None:
                    written.append(write_run(store, name, scale, point, seed, v))
    return written


def long_form(experiment: str, cells: Sequence[tuple[Mapping[str, Any], Sequence[float]]], scale: str = "cpu",
              metric: str = "linear_top1", config: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """A results table shaped like registry.store.load_results: one row per run and metric; `cells` gives each
    axis point and one value per seed (seed i gets the i-th value)."""
    rows = []
    for n, (point, values) in enumerate(cells):
        for seed, value in enumerate(values):
            extra = dict(config(point) if callable(config) else (config or {}))
            rows.append({"run_id": f"{experiment}/p{n}-s{seed}", "experiment": experiment, "scale": scale,
                         "label": f"p{n}", "seed": seed, "metric": metric, "value": float(value),
                         **{f"axis.{k}": v for k, v in point.items()}, **extra})
            rows.append({**rows[-1], "metric": "knn_top1", "value": -1.0})   # another metric, to be ignored
    return pd.DataFrame(rows)
