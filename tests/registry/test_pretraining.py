"""Runs that differ only in evaluation share one pretraining: the second evaluates the first's checkpoint and
gets the metrics it would have got by training itself."""
from __future__ import annotations

import json

import pytest

from registry import Experiment, grid
from registry.launch import LocalExecutor, execute_run
from registry.pretraining import finished_pretrainings, pretraining_key
from registry.store import RunStore, load_results
from reports.what_ran import describe


def _experiment() -> Experiment:
    return Experiment(name="own_eval_axis", title="kNN temperature, an evaluation-only axis", metric="knn_top1",
                      base={"optim.lr_scaling": "linear"},
                      axes=grid(eval__knn_temperature=(0.07, 0.5)))


def _steps(path) -> list[int]:
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if '"step"' in line]


def test_an_evaluation_only_axis_is_recognised_and_keys_one_pretraining():
    experiment = _experiment()
    assert experiment.evaluation_only_axes() == ("eval.knn_temperature",)
    first, second = experiment.runs("smoke")
    assert first.run_id != second.run_id
    assert pretraining_key(first.config) == pretraining_key(second.config)
    assert pretraining_key(first.config) != pretraining_key(first.config.with_overrides({"seed": 1}))


def test_the_second_run_evaluates_the_first_ones_pretraining_as_if_it_had_trained(tmp_path):
    first, second = _experiment().runs("smoke")
    assert execute_run(first, tmp_path / "shared").state == "done"
    outcome = execute_run(second, tmp_path / "shared")
    assert outcome.state == "done" and "pretraining of" in outcome.detail
    store = RunStore(tmp_path / "shared")
    final = store.final(second.run_id)
    assert final["pretraining_from"] == first.run_id
    assert store.status(second.run_id)["pretraining_from"] == first.run_id
    # The training curve is the donor's; the donor's own files are untouched.
    donor_curve = (store.run_dir(first.run_id) / "metrics.jsonl").read_text()
    assert (store.run_dir(second.run_id) / "metrics.jsonl").read_text().startswith(donor_curve)
    assert _steps(store.run_dir(second.run_id) / "metrics.jsonl") == _steps(store.run_dir(first.run_id) / "metrics.jsonl")
    assert store.final(first.run_id).get("pretraining_from") is None

    # Trained on its own, the second run reaches the same evaluation.
    assert execute_run(second, tmp_path / "alone").state == "done"
    alone = RunStore(tmp_path / "alone").final(second.run_id)
    assert alone["knn_top1"] == final["knn_top1"] and alone["steps"] == final["steps"]

    # Device-hours count the shared pretraining once.
    what = describe(load_results(tmp_path / "shared"))
    assert any("evaluated another run's pretraining" in note for note in what.notes)


def interrupted(*args) -> None:
    raise KeyboardInterrupt     # Ctrl-C, or SIGTERM (RunCancelled), during the evaluation


def trained_then_interrupted(cfg, run_dir) -> None:
    from simclr_core.train import train

    train(cfg, run_dir)         # final.json written, then stopped before execute_run added where its pretraining came from
    raise KeyboardInterrupt


@pytest.mark.parametrize("stopped", [interrupted, trained_then_interrupted])
def test_a_run_stopped_while_it_evaluates_another_runs_pretraining_still_records_whose_it_is(tmp_path, stopped):
    # Resumed, it took its own copy of the donor's checkpoint for its own pretraining: final.json lacked
    # pretraining_from, so device-hours counted that pretraining twice and the run lent it to others as its own.
    first, second = _experiment().runs("smoke")
    assert execute_run(first, tmp_path).state == "done"
    with pytest.raises(KeyboardInterrupt):
        execute_run(second, tmp_path, stopped)
    outcome = execute_run(second, tmp_path)
    assert outcome.state in {"done", "skipped"}
    store = RunStore(tmp_path)
    assert store.state(second.run_id) == "done"
    runs = load_results(tmp_path).drop_duplicates("run_id").set_index("run_id")
    assert runs.loc[second.run_id, "pretraining_from"] == first.run_id
    assert finished_pretrainings(store) == {pretraining_key(first.config): first.run_id}


def test_a_pool_runs_shared_pretrainings_one_after_the_other(tmp_path):
    first, second = _experiment().runs("smoke")
    outcomes = LocalExecutor(max_parallel=2).dispatch([first, second], tmp_path)
    assert [o.state for o in outcomes] == ["done", "done"]
    assert RunStore(tmp_path).final(second.run_id)["pretraining_from"] == first.run_id


def test_estimates_count_a_shared_pretraining_once():
    from registry.estimate import estimate, total

    first, second = _experiment().runs("cpu")
    one, other = estimate(first.config, "cpu"), estimate(second.config, "cpu")
    assert 0 < one.pretrain_hours < one.hours
    both = total([first.config, second.config], "cpu")
    assert both.hours == pytest.approx(one.hours + other.hours - other.pretrain_hours)
    seeded = first.config.with_overrides({"seed": 1})       # another pretraining: paid again
    assert total([first.config, seeded], "cpu").hours == pytest.approx(2 * one.hours)


def test_auto_loader_is_keyed_as_what_it_resolves_to():
    first = _experiment().runs("cpu")[0].config
    assert first.data.loader == "auto" and first.data.dataset == "cifar10"
    assert pretraining_key(first) == pretraining_key(first.with_overrides({"data.loader": "resident"}))
    assert pretraining_key(first) != pretraining_key(first.with_overrides({"data.loader": "stream"}))


def test_a_dry_run_plans_evaluation_only_for_a_pretraining_the_results_folder_holds(tmp_path, capsys, monkeypatch):
    from registry import plan
    from registry.plan import print_plan

    monkeypatch.setattr(plan, "get_experiment", lambda name: _experiment())      # not a declared experiment
    first, second = _experiment().runs("smoke")
    store = RunStore(tmp_path)
    print_plan([second], "smoke", store, 1)
    alone = capsys.readouterr().out
    assert "pending" in alone and "eval only" not in alone
    assert execute_run(first, tmp_path).state == "done"
    print_plan([second], "smoke", store, 1)
    planned = capsys.readouterr().out
    line = next(row for row in planned.splitlines() if second.run_id in row)
    assert "eval only" in line
    print_plan([first], "smoke", store, 1)                   # the donor itself stays what it is
    assert "done" in next(row for row in capsys.readouterr().out.splitlines() if first.run_id in row)



def test_a_redone_run_trains_its_own_pretraining(tmp_path, monkeypatch, capsys):
    from fake_train import checkpointing_train
    from registry import get_experiment, launch
    from registry.__main__ import main

    results = tmp_path / "results"
    first, second = get_experiment("table8_transfer").runs("smoke")[:2]      # an evaluation-only axis
    assert execute_run(first, results, checkpointing_train).detail == "trained"
    assert execute_run(second, results, checkpointing_train).detail == f"evaluated the pretraining of {first.run_id}"

    monkeypatch.setattr(launch, "DEFAULT_TRAIN_FN", "fake_train:checkpointing_train")
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(results))
    assert main(["run", "table8_transfer", "--scale", "smoke", "--only", second.run_id, "--redo"]) == 0
    out = capsys.readouterr().out
    assert f"done      {second.run_id}  trained" in out and "pretraining of" not in out
    final = RunStore(results).final(second.run_id)
    assert final["resumed"] is False and "pretraining_from" not in final


def test_a_run_that_evaluated_another_runs_pretraining_lends_it_to_no_run(tmp_path):
    from fake_train import checkpointing_train
    from registry import get_experiment

    first, second, third = get_experiment("table8_transfer").runs("smoke")[:3]
    store = RunStore(tmp_path)
    assert execute_run(first, tmp_path, checkpointing_train).detail == "trained"
    assert execute_run(second, tmp_path, checkpointing_train).detail == f"evaluated the pretraining of {first.run_id}"
    store.discard(first.run_id)          # as `run --redo` does before training it again
    # second's checkpoint is the pretraining just discarded: third trains its own.
    assert execute_run(third, tmp_path, checkpointing_train).detail == "trained"
    assert "pretraining_from" not in store.final(third.run_id)


def test_a_pool_trains_redone_runs_of_one_pretraining_at_the_same_time(tmp_path):
    from registry import get_experiment
    from registry.pretraining import REDO_FIELD

    runs = get_experiment("table8_transfer").runs("smoke")[:2]
    store = RunStore(tmp_path)
    for run in runs:                     # as `run --only ... --redo` leaves them: each trains its own pretraining
        store.mark_pending(run, {}, **{REDO_FIELD: "2026-01-01T00:00:00Z"})
    outcomes = LocalExecutor(max_parallel=2, train_fn="fake_train:meeting_train").dispatch(runs, tmp_path)
    assert [o.detail for o in outcomes] == ["trained", "trained"]
    assert all(store.final(run.run_id)["met"] for run in runs)
