"""Claims left by an earlier attempt of a requeued SLURM job: its next attempt, often on another node, takes them over;
every other claim held on another host is respected as before."""
from __future__ import annotations

import json

import pytest

from fake_train import counting_train
from registry.claim import CLAIM_NAME, describe_claim, earlier_attempt, owner_info, read_claim, try_claim
from registry.declare import Run
from registry.launch import execute_run
from registry.store import RunStore
from simclr_core.config import RunConfig

_SLURM_ENV = ("SLURM_JOB_ID", "SLURM_RESTART_COUNT", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID",
              "SLURM_CLUSTER_NAME")


def in_job(monkeypatch, job_id: str | None = "8", restarts: int | None = 1, array: tuple[str, str] | None = None,
           cluster: str | None = "lab") -> None:
    """This process as an attempt of SLURM job `job_id` (None: outside SLURM)."""
    for name in _SLURM_ENV:
        monkeypatch.delenv(name, raising=False)
    values = {"SLURM_JOB_ID": job_id, "SLURM_RESTART_COUNT": None if restarts is None else str(restarts),
              "SLURM_CLUSTER_NAME": cluster}
    if array is not None:
        values["SLURM_ARRAY_JOB_ID"], values["SLURM_ARRAY_TASK_ID"] = array
    for name, value in values.items():
        if job_id is not None and value is not None:
            monkeypatch.setenv(name, value)


def attempt_on_othernode(**job) -> dict:
    """A claim as an attempt on another node writes it (`job`: its slurm_* fields)."""
    return {"host": "othernode", "pid": 4242, "process_started": 1.0, "token": "earlier", "claimed_at": 1.0, **job}


def write_claim(run_dir, claim: dict) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CLAIM_NAME).write_text(json.dumps(claim))


def test_a_claim_records_the_slurm_job_and_attempt(monkeypatch):
    in_job(monkeypatch, job_id="12", restarts=2, array=("10", "3"))
    assert {k: v for k, v in owner_info().items() if k.startswith("slurm_")} == {
        "slurm_cluster": "lab", "slurm_job_id": "12", "slurm_array_job_id": "10", "slurm_array_task_id": "3",
        "slurm_restarts": 2}
    in_job(monkeypatch, job_id="12", restarts=None, cluster=None)        # a first attempt: SLURM sets no count
    assert owner_info()["slurm_restarts"] == 0 and "slurm_cluster" not in owner_info()
    in_job(monkeypatch, job_id=None)
    assert not any(k.startswith("slurm_") for k in owner_info())


def test_the_requeued_attempt_takes_over_the_claim_its_killed_attempt_left_on_another_node(results, monkeypatch,
                                                                                        capsys):
    """An attempt SIGKILLed before it released its claim (KillWait, node failure, OOM) left claim.lock; the requeued
    attempt on another node read it as live and skipped the run, so the job ended without training it."""
    run = Run("toy/s1-000000000001", "toy", "smoke", {"seed": 1}, RunConfig(seed=1))
    store = RunStore(results)
    write_claim(store.run_dir(run.run_id),
                attempt_on_othernode(slurm_cluster="lab", slurm_job_id="8", slurm_restarts=0))
    in_job(monkeypatch, job_id="8", restarts=1)

    outcome = execute_run(run, results, counting_train)
    assert outcome.state == "done", outcome
    out = capsys.readouterr().out
    assert out.count("took over the claim") == 1
    assert (f"[{run.run_id}] took over the claim left by an earlier attempt of this SLURM job, othernode:4242 "
            "(SLURM job 8, restart 0): it was killed before it could release it") in out
    assert read_claim(store.run_dir(run.run_id)) is None            # ours, released at the end


def test_the_earlier_attempt_of_the_same_array_task_is_taken_over(tmp_path, monkeypatch):
    in_job(monkeypatch, job_id="21", restarts=3, array=("20", "1"))
    write_claim(tmp_path, attempt_on_othernode(slurm_cluster="lab", slurm_job_id="21", slurm_array_job_id="20",
                                               slurm_array_task_id="1", slurm_restarts=2))
    assert "[stale]" in describe_claim(read_claim(tmp_path))
    claim = try_claim(tmp_path)
    assert claim is not None and claim.took_over["token"] == "earlier"
    assert read_claim(tmp_path)["slurm_restarts"] == 3 and read_claim(tmp_path)["host"] != "othernode"


@pytest.mark.parametrize("job, claim", [
    # another job (the same restart counts), and a process outside SLURM on another host
    ({"job_id": "8"}, {"slurm_cluster": "lab", "slurm_job_id": "9", "slurm_restarts": 0}),
    ({"job_id": "8"}, {}),
    # this very attempt: another task or node of the job, or a local `run`'s pool inside the allocation
    ({"job_id": "8", "restarts": 1}, {"slurm_cluster": "lab", "slurm_job_id": "8", "slurm_restarts": 1}),
    ({"job_id": "8", "restarts": None}, {"slurm_cluster": "lab", "slurm_job_id": "8", "slurm_restarts": 0}),
    # a later attempt than ours cannot exist while we run: kept, not guessed at
    ({"job_id": "8", "restarts": 1}, {"slurm_cluster": "lab", "slurm_job_id": "8", "slurm_restarts": 2}),
    # a claim that does not say its attempt (an older checkout wrote it)
    ({"job_id": "8", "restarts": 1}, {"slurm_cluster": "lab", "slurm_job_id": "8"}),
    # another task of the same array (its own job), and the same job id on another cluster
    ({"job_id": "21", "array": ("20", "1")},
     {"slurm_cluster": "lab", "slurm_job_id": "21", "slurm_array_job_id": "20", "slurm_array_task_id": "2",
      "slurm_restarts": 0}),
    ({"job_id": "8"}, {"slurm_cluster": "other", "slurm_job_id": "8", "slurm_restarts": 0}),
    # outside SLURM, a job's claim on another host
    ({"job_id": None}, {"slurm_cluster": "lab", "slurm_job_id": "8", "slurm_restarts": 0}),
])
def test_claims_on_another_host_of_other_jobs_or_attempts_are_respected(tmp_path, monkeypatch, job, claim):
    in_job(monkeypatch, **job)
    write_claim(tmp_path, attempt_on_othernode(**claim))
    assert not earlier_attempt(read_claim(tmp_path))
    assert try_claim(tmp_path) is None
    assert read_claim(tmp_path)["token"] == "earlier" and "[stale]" not in describe_claim(read_claim(tmp_path))
