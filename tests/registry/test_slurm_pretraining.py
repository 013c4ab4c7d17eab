"""Under SLURM, runs that differ only in evaluation pretrain once: the first trains, the others' jobs start after
its job ends (an `afterany` dependency) and evaluate its checkpoint. The planning needs no cluster; the `slurm`
test submits to the one-node cluster of scripts/slurm/start-cluster.sh."""
from __future__ import annotations

import subprocess

import pytest
import torch

from registry import Experiment, RunStore, grid
from registry.pretraining import REDO_FIELD, pretraining_key
from registry.slurm import share_pretraining
from registry.slurm_settings import SlurmSettings

from test_slurm import QUICK, cluster_problem, executor, wait_for


def _experiment() -> Experiment:
    return Experiment(name="own_eval_axis", title="kNN temperature, an evaluation-only axis", metric="knn_top1",
                      base={"optim.lr_scaling": "linear"}, axes=grid(eval__knn_temperature=(0.07, 0.1, 0.2, 0.5)))


def _finish(store: RunStore, run, checkpoint: bool = True) -> None:
    store.mark_pending(run, {})
    if checkpoint:
        torch.save({"step": 4}, store.run_dir(run.run_id) / "checkpoint.pt")
    store.write_final(run.run_id, {"knn_top1": 50.0})


def test_the_first_run_of_a_pretraining_trains_and_the_others_wait_for_it(tmp_path):
    runs = _experiment().runs("smoke")
    seeded = _experiment().runs("smoke", {"seed": 1})[:2]          # another pretraining: its own leader
    now, waiting = share_pretraining([*runs, *seeded], RunStore(tmp_path), {})
    assert [r.run_id for r in now] == [runs[0].run_id, seeded[0].run_id]
    assert {leader: [r.run_id for r in followers] for leader, followers in waiting.items()} == {
        runs[0].run_id: [r.run_id for r in runs[1:]], seeded[0].run_id: [seeded[1].run_id]}


def test_a_finished_pretraining_in_the_store_lets_every_run_start_now(tmp_path):
    runs = _experiment().runs("smoke")
    store = RunStore(tmp_path)
    _finish(store, runs[0])
    now, waiting = share_pretraining(runs[1:], store, {})
    assert [r.run_id for r in now] == [r.run_id for r in runs[1:]] and waiting == {}
    # A finished run without a checkpoint gives nothing to evaluate: it is no donor.
    other = RunStore(tmp_path / "other")
    _finish(other, runs[0], checkpoint=False)
    assert list(share_pretraining(runs[1:], other, {})[1]) == [runs[1].run_id]


def test_a_run_with_its_own_checkpoint_leads_and_a_live_job_is_waited_for(tmp_path):
    runs = _experiment().runs("smoke")
    store = RunStore(tmp_path)
    store.mark_pending(runs[2], {})
    torch.save({"step": 2}, store.run_dir(runs[2].run_id) / "checkpoint.pt")
    now, waiting = share_pretraining(runs, store, {})
    assert [r.run_id for r in now] == [runs[2].run_id]       # it resumes its own training; the rest wait for it
    assert [r.run_id for r in waiting[runs[2].run_id]] == [runs[0].run_id, runs[1].run_id, runs[3].run_id]

    key = pretraining_key(runs[0].config)
    now, waiting = share_pretraining(runs[1:2], RunStore(tmp_path / "fresh"), {key: runs[0].run_id})
    assert now == [] and [r.run_id for r in waiting[runs[0].run_id]] == [runs[1].run_id]


def test_redone_runs_train_their_own_pretraining_and_wait_for_none(tmp_path):
    runs = _experiment().runs("smoke")[:2]
    store = RunStore(tmp_path)
    for run in runs:                     # as `run --only ... --redo` leaves them
        store.mark_pending(run, {}, **{REDO_FIELD: "2026-01-01T00:00:00Z"})
    now, waiting = share_pretraining(runs, store, {})
    assert [r.run_id for r in now] == [r.run_id for r in runs] and waiting == {}


@pytest.mark.slurm
def test_slurm_runs_of_one_pretraining_train_it_once(tmp_path):
    problem = cluster_problem()
    if problem:
        pytest.skip(problem)
    quick = {k: v for k, v in QUICK.items() if k != "checkpoint_every_steps"}
    first, second = _experiment().runs("smoke", {**quick, "max_steps": 4})[:2]
    slurm = executor(SlurmSettings(time_min=10, cpus_per_task=1), wait=False)
    outcomes = slurm.dispatch([first, second], tmp_path)
    assert [o.state for o in outcomes] == ["submitted", "submitted"]
    leader_job = slurm.jobs[first.run_id].job_id
    assert f"after job {leader_job} (it evaluates the pretraining of {first.run_id})" in outcomes[1].detail
    dependency = subprocess.run(["squeue", "-h", "-j", str(slurm.jobs[second.run_id].job_id), "-o", "%E"],
                                capture_output=True, text=True).stdout
    assert f"afterany:{leader_job}" in dependency or dependency.strip() in ("", "(null)"), dependency
    store = RunStore(tmp_path)
    wait_for(lambda: store.is_done(first.run_id) and store.is_done(second.run_id), 300, "both runs", 1.0)
    assert store.final(second.run_id)["pretraining_from"] == first.run_id
    assert store.final(first.run_id).get("pretraining_from") is None
    # The second job started only once the first had ended (ISO times of one clock compare as strings).
    assert store.status(second.run_id)["started"] >= store.status(first.run_id)["finished"]
