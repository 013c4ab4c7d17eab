"""A study's trials and best value as a JSON file beside the runs, and all studies as one table.

    <results>/optuna/<study>.json     written atomically after every tell; readable without Optuna; `counts` by
                                      Optuna state, `failed` and `retried` (FAIL trials asked again) besides,
                                      and `cancelled` (of the failed, those the next sweep asks again)
    load_sweeps(results_dir)          -> pandas DataFrame, one row per trial of every study

The trials' runs are ordinary runs of the sweep's experiment (registry.store.load_results sees them); these
files add what only the study knows: which trials belong to it, their order, states, retries and the best.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.store import default_results_dir, now_iso
from simclr_core.atomic_files import atomic_write_text, remove_abandoned_temps

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from registry.sweep_space import StudyPlan

SUMMARY_DIR = "optuna"
TRIAL_COLUMNS = ["study", "sweep", "experiment", "scale", "sampler", "metric", "split_axis", "split", "axis",
                 "trial", "state", "value", "is_best", "reused", "retry_of", "run_id", "error"]


def summary_path(results_dir: str | os.PathLike, study_name: str) -> Path:
    return Path(results_dir) / SUMMARY_DIR / f"{study_name}.json"


def study_summary(plan: "StudyPlan", study: "optuna.Study", storage: str, target: int) -> dict[str, Any]:
    """Plain data: the study's identity, search space, every trial, and the best trial (max of the metric)."""
    axis = plan.sweep.axis
    trials = []
    for t in study.get_trials(deepcopy=False):
        point = t.user_attrs.get("point") or {}
        trials.append({
            "number": t.number, "state": t.state.name,
            "value": t.value if t.state.name == "COMPLETE" else None,
            axis: point.get(axis, t.params.get(axis)), "suggested": t.params.get(axis),
            "run_ids": t.user_attrs.get("run_ids", []), "reused": t.user_attrs.get("reused"),
            "retry_of": t.user_attrs.get("retry_of"), "error": t.user_attrs.get("error"),
            "cancelled": bool(t.user_attrs.get("cancelled")),
            "started": t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else None,
            "finished": t.datetime_complete.isoformat(timespec="seconds") if t.datetime_complete else None,
        })
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    asked_again = {t["retry_of"] for t in trials}
    failed = [t for t in trials if t["state"] == "FAIL"]
    best = max(complete, key=lambda t: (t["value"], -t["number"])) if complete else None
    return {
        "study": plan.study_name, "sweep": plan.sweep.name, "experiment": plan.experiment.name,
        "scale": plan.scale.name, "sampler": plan.sampler, "metric": plan.metric, "direction": "maximize",
        "axis": axis, "split_axis": plan.sweep.split_axis, "split": plan.split,
        "space": {"low": plan.low, "high": plan.high, "log": True, "grid": list(plan.grid),
                  "significant_digits": plan.sweep.significant_digits},
        "overrides": dict(plan.overrides), "storage": storage, "target_trials": target,
        "counts": {state: sum(1 for t in trials if t["state"] == state)
                   for state in ("COMPLETE", "FAIL", "RUNNING", "WAITING")},
        # Of the FAIL trials: those no trial asks again (failed, as things stand), and those asked again (a
        # killed driver's orphan, a cancelled job's, --retry-failed's), whose retry is a trial of its own.
        "failed": sum(t["number"] not in asked_again for t in failed),
        "retried": sum(t["number"] in asked_again for t in failed),
        # Of the failed: those whose runs were cancelled, which the next driver asks again (reask_cancelled).
        "cancelled": sum(t["number"] not in asked_again and t["cancelled"] for t in failed),
        "best": None if best is None else {"trial": best["number"], axis: best[axis], "value": best["value"],
                                           "run_id": (best["run_ids"] or [None])[0]},
        "trials": trials, "updated": now_iso(),
    }


def write_summary(results_dir: str | os.PathLike, summary: dict[str, Any]) -> Path:
    path = summary_path(results_dir, summary["study"])
    remove_abandoned_temps(path)       # what a driver killed mid-write left (other drivers may be writing it now)
    atomic_write_text(path, json.dumps(summary, indent=2, sort_keys=False, default=str) + "\n")
    return path


def load_summaries(results_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    folder = default_results_dir(results_dir) / SUMMARY_DIR
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def load_sweeps(results_dir: str | os.PathLike | None = None) -> "pd.DataFrame":
    """One row per trial of every stored study (TRIAL_COLUMNS, plus the axis's own column, e.g.
    "loss.temperature"). Join with load_results() on run_id for the other metrics of each trial's run."""
    import pandas as pd

    rows = []
    for s in load_summaries(results_dir):
        best = (s.get("best") or {}).get("trial")
        for t in s["trials"]:
            run_ids = t.get("run_ids") or [None]
            for run_id in run_ids:
                rows.append({
                    "study": s["study"], "sweep": s["sweep"], "experiment": s["experiment"], "scale": s["scale"],
                    "sampler": s["sampler"], "metric": s["metric"], "split_axis": s["split_axis"],
                    "split": s["split"], "axis": s["axis"], s["axis"]: t.get(s["axis"]), "trial": t["number"],
                    "state": t["state"], "value": t["value"], "is_best": t["number"] == best,
                    "reused": t.get("reused"), "retry_of": t.get("retry_of"), "run_id": run_id,
                    "error": t.get("error"),
                })
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=TRIAL_COLUMNS)
    return frame[TRIAL_COLUMNS + [c for c in frame.columns if c not in TRIAL_COLUMNS]]
