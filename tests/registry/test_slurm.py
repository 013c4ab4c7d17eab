"""SLURM dispatch (registry/slurm*.py): settings, states and signals here; real jobs on a one-node cluster.

The tests marked `slurm` need a running cluster: scripts/slurm/start-cluster.sh, then
`source /tmp/slurm-local/env.sh` (exports SLURM_CONF). Without one they skip and say why. They train real
smoke-scale runs through submitit with this venv's Python, and take about two minutes on a 2-core machine.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest

from registry import RunStore, get_experiment
from registry.__main__ import main
from registry.claim import CLAIM_NAME, owner_info, read_claim
from registry.slurm_job import RunPreempted, SlurmRunTask, _Signals, checkpoint_step
from registry.slurm_settings import SlurmSettings, load_settings
from registry.slurm_state import SUBMISSION_NAME, parse_states, reconcile_run
from registry.launch import RunCancelled
from simclr_core import stop_request
from simclr_core.validation import ConfigError

REPO = Path(__file__).resolve().parents[2]
# Small, fast steps (16 px, batch 16) for the jobs that must still be training when they are signalled.
QUICK = {"checkpoint_every_steps": 5, "log_every_steps": 1, "data.image_size": 16, "batch_size": 16,
         "data.train_limit": 256, "data.test_limit": 64}


def cluster_problem() -> str | None:
    if not os.environ.get("SLURM_CONF"):
        return ("SLURM_CONF is unset: no test cluster (scripts/slurm/start-cluster.sh, then "
                "source /tmp/slurm-local/env.sh)")
    try:
        probe = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo failed: {exc}"
    if probe.returncode != 0:
        return f"sinfo failed: {(probe.stderr or probe.stdout).strip()}"
    return None


@pytest.fixture(scope="module")
def partition() -> str:
    """Skips unless a SLURM cluster answers; its default partition (the tests hard-code no cluster facts)."""
    problem = cluster_problem()
    if problem:
        pytest.skip(problem)
    names = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True).stdout.split()
    return next((n.rstrip("*") for n in names if n.endswith("*")), names[0])


def smoke_runs(overrides: dict | None = None, count: int = 1):
    return get_experiment("head_type").runs("smoke", overrides or {})[:count]


def metric_steps(run_dir: Path) -> list[int]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if line.strip()]


def wait_for(condition, timeout: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def executor(settings: SlurmSettings, **kwargs):
    from registry.slurm import SlurmExecutor
    return SlurmExecutor(settings, poll_s=1.0, **kwargs)


# ---- settings ------------------------------------------------------------------------------------------
def test_flags_override_the_config_file_and_map_onto_submitit(tmp_path, monkeypatch):
    config = tmp_path / "slurm.toml"
    config.write_text('partition = "gpu"\naccount = "proj"\ngpus_per_node = 4\ncpus_per_task = 8\n'
                      'time_min = 600\nsetup = ["module load cuda"]\n[sbatch]\nexclusive = true\n')
    monkeypatch.setenv("SIMCLR_SLURM_CONFIG", str(config))
    settings = load_settings(overrides={"time_min": 30, "account": None, "tasks_per_node": None})
    assert (settings.partition, settings.account, settings.time_min) == ("gpu", "proj", 30)
    assert settings.processes_per_node == 4              # one training process per GPU by default
    assert settings.submitit_parameters() == {
        "nodes": 1, "tasks_per_node": 4, "timeout_min": 30, "slurm_signal_delay_s": 120,
        "slurm_partition": "gpu", "slurm_account": "proj", "cpus_per_task": 8, "gpus_per_node": 4,
        "slurm_setup": ["module load cuda"], "slurm_additional_parameters": {"exclusive": True}}
    cpu = load_settings(overrides={"gpus_per_node": 0, "tasks_per_node": 2})
    assert cpu.processes_per_node == 2 and "gpus_per_node" not in cpu.submitit_parameters()


def test_bad_settings_name_the_valid_choices(tmp_path, monkeypatch):
    config = tmp_path / "slurm.toml"
    config.write_text('partiton = "gpu"\n')
    with pytest.raises(ConfigError, match=r"'partiton'.*valid: partition, account.*; did you mean 'partition'\?$"):
        load_settings(config)
    with pytest.raises(ConfigError, match=r"unknown SLURM setting\(s\) \['time_mins'\].*; did you mean 'time_min'\?$"):
        load_settings(overrides={"time_mins": 30})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="gpus_per_node=-1"):
        SlurmSettings(gpus_per_node=-1)
    monkeypatch.delenv("SIMCLR_SLURM_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "empty"))     # no default file: no settings
    with pytest.raises(ConfigError, match="--slurm-time-min"):
        load_settings().submitit_parameters()


def test_a_time_limit_within_the_warning_signal_is_refused():
    """SIGUSR2 comes signal_delay_s (+ up to 60 s) before the limit: a limit no longer than that would requeue
    every attempt as it starts, until max_requeues is spent, and the run would fail having trained nothing."""
    with pytest.raises(ConfigError, match=r"time_min=1 \(from flags\).*signal_delay_s=120.*--slurm-time-min 4 or "
                                          r"more, or --slurm-signal-delay-s 0 \(no warning"):
        load_settings(overrides={"time_min": 1}).submitit_parameters()
    with pytest.raises(ConfigError, match="--slurm-time-min 4 or more, or --slurm-signal-delay-s 60 or less$"):
        SlurmSettings(time_min=3).require_time_limit()
    SlurmSettings(time_min=4).require_time_limit()
    with pytest.raises(ConfigError, match="--slurm-time-min 3 or more"):
        SlurmSettings(time_min=2, signal_delay_s=30).require_time_limit()
    SlurmSettings(time_min=3, signal_delay_s=30).require_time_limit()
    SlurmSettings(time_min=1, signal_delay_s=0).require_time_limit()      # no warning signal asked for


def test_slurm_without_slurm_commands_says_so_before_recording_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(tmp_path / "results"))
    code = main(["run", "head_type", "--scale", "smoke", "--slurm", "--slurm-time-min", "5"])
    err = capsys.readouterr().err
    assert code == 2 and "SLURM's commands are not on this machine" in err and "sbatch" in err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("verb", [["run", "head_type"], ["sweep", "temperature"]])
def test_missing_slurm_is_reported_before_the_missing_time_limit(tmp_path, verb):
    # No sbatch on PATH and no time limit anywhere (no flag, no config file): SLURM's absence is what to fix first.
    env = {**os.environ, "PATH": str(tmp_path / "no-bin"), "PYTHONPATH": str(REPO),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "SIMCLR_RESULTS_DIR": str(tmp_path / "results")}
    env.pop("SIMCLR_SLURM_CONFIG", None)
    done = subprocess.run([sys.executable, "-m", "registry", *verb, "--scale", "smoke", "--slurm"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "SLURM's commands are not on this machine" in done.stderr and "sbatch" in done.stderr
    assert "--slurm-time-min" not in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "results").exists()


def test_slurm_flags_without_slurm_are_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(tmp_path / "results"))
    code = main(["run", "head_type", "--scale", "smoke", "--slurm-partition", "gpu", "--slurm-wait"])
    assert code == 2 and "--slurm-partition, --slurm-wait only apply with --slurm" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


# ---- states, reconciling, signals ------------------------------------------------------------------------
def test_sacct_and_squeue_lines_parse_with_pending_arrays_expanded():
    text = "12_[0-2,5%2]|PENDING\n12_3|RUNNING\n13|CANCELLED by 0\n13.batch|CANCELLED\n14|COMPLETED\n"
    assert parse_states(text) == {"12_0": "PENDING", "12_1": "PENDING", "12_2": "PENDING", "12_5": "PENDING",
                                  "12_3": "RUNNING", "13": "CANCELLED", "14": "COMPLETED"}


def _submitted_run(store: RunStore, run_id: str, status: dict, claim: dict | None) -> Path:
    run_dir = store.run_dir(run_id)
    run_dir.mkdir(parents=True)
    log = run_dir / "job.err"
    log.write_text("Traceback ...\nMemoryError: the last line of the job log\n")
    (run_dir / SUBMISSION_NAME).write_text(json.dumps({"job_id": "7_1", "stderr": str(log)}))
    store.write_status(run_id, status.pop("state"), **status)
    if claim is not None:
        (run_dir / CLAIM_NAME).write_text(json.dumps(claim))
    return run_dir


def test_a_job_that_died_unrecorded_is_reconciled_and_its_claim_broken(tmp_path):
    store = RunStore(tmp_path)
    running = {"state": "running", "slurm_job_id": "7_1", "slurm_raw_job_id": "8"}
    dead_owner = {"host": "node-elsewhere", "pid": 1, "slurm_job_id": "8", "token": "t"}
    run_dir = _submitted_run(store, "e/killed-1", dict(running), dead_owner)
    assert reconcile_run(store, "e/killed-1", {"7_1": "RUNNING"}) == "SLURM job 7_1 RUNNING"
    assert store.status("e/killed-1")["state"] == "running" and (run_dir / CLAIM_NAME).exists()

    assert reconcile_run(store, "e/killed-1", {"7_1": "OUT_OF_MEMORY"}) == "SLURM job 7_1 OUT_OF_MEMORY"
    assert store.state("e/killed-1") == "failed" and not (run_dir / CLAIM_NAME).exists()
    assert "ended OUT_OF_MEMORY" in store.status("e/killed-1")["error"]
    assert "raise --slurm-mem-gb or lower batch_size" in store.status("e/killed-1")["error"]
    assert "MemoryError: the last line of the job log" in store.error_text("e/killed-1")

    # Its process still alive on this host (unwinding after scancel): it records its own end.
    alive = {**owner_info(), "slurm_job_id": "8", "token": "v"}
    _submitted_run(store, "e/unwinding-1", dict(running), alive)
    reconcile_run(store, "e/unwinding-1", {"7_1": "CANCELLED"})
    assert store.status("e/unwinding-1")["state"] == "running"
    # Claimed since by another job: not ours to break.
    _submitted_run(store, "e/reclaimed-1", dict(running), {**dead_owner, "slurm_job_id": "99", "token": "u"})
    reconcile_run(store, "e/reclaimed-1", {"7_1": "NODE_FAIL"})
    assert store.status("e/reclaimed-1")["state"] == "running"
    # Cancelled while still queued: cancelled. A run that recorded its own end is left alone.
    _submitted_run(store, "e/queued-1", {"state": "pending"}, None)
    reconcile_run(store, "e/queued-1", {"7_1": "CANCELLED"})
    assert store.state("e/queued-1") == "cancelled" and "ended CANCELLED" in store.status("e/queued-1")["error"]
    _submitted_run(store, "e/own-1", {"state": "cancelled", "error": "RunCancelled"}, None)
    reconcile_run(store, "e/own-1", {"7_1": "CANCELLED"})
    assert store.status("e/own-1")["error"] == "RunCancelled"



def test_a_completed_job_whose_run_failed_inside_it_says_so(tmp_path):
    """The task returns the run's failure as its outcome, so SLURM calls the job COMPLETED: `show` must not read as
    if the run had finished."""
    store = RunStore(tmp_path)
    _submitted_run(store, "e/failed-1", {"state": "failed", "error": "NonFiniteLossError"}, None)
    assert reconcile_run(store, "e/failed-1", {"7_1": "COMPLETED"}) == \
        "SLURM job 7_1 COMPLETED, without finishing the run"
    assert store.status("e/failed-1")["error"] == "NonFiniteLossError"

def test_a_requeued_job_makes_its_cancelled_run_pending_again(tmp_path):
    """`scontrol requeue` (or a preemption SLURM requeues) stops the attempt with SIGTERM, which records the run
    cancelled; while the job waits to start again, the run is pending, not cancelled."""
    store = RunStore(tmp_path)
    stopped = {"state": "cancelled", "error": "RunCancelled", "slurm_job_id": "7_1", "slurm_raw_job_id": "8"}
    _submitted_run(store, "e/requeued-1", dict(stopped), None)
    assert reconcile_run(store, "e/requeued-1", {"7_1": "PENDING"}) == "SLURM job 7_1 PENDING"
    assert store.state("e/requeued-1") == "pending" and store.status("e/requeued-1")["error"] is None
    # scancel'd for good: it stays cancelled.
    _submitted_run(store, "e/cancelled-1", dict(stopped), None)
    reconcile_run(store, "e/cancelled-1", {"7_1": "CANCELLED"})
    assert store.state("e/cancelled-1") == "cancelled"
    # Cancelled by another job (or a local run), or already claimed by the new attempt: left alone.
    _submitted_run(store, "e/other-1", {**stopped, "slurm_job_id": "5_0"}, None)
    reconcile_run(store, "e/other-1", {"7_1": "PENDING"})
    assert store.status("e/other-1")["state"] == "cancelled"
    _submitted_run(store, "e/claimed-1", dict(stopped), {**owner_info(), "slurm_job_id": "8", "token": "w"})
    reconcile_run(store, "e/claimed-1", {"7_1": "REQUEUED"})
    assert store.status("e/claimed-1")["state"] == "cancelled"


def test_a_requeued_job_whose_attempt_was_killed_outright_reads_pending_not_running(tmp_path):
    """An attempt SIGKILLed (KillWait, a node failure) records no end: its run read running, on another node's claim,
    for as long as the requeued job waited in the queue. No attempt runs while SLURM queues the job: pending."""
    store = RunStore(tmp_path)
    killed = {"host": "othernode", "pid": 4242, "slurm_restarts": 0}
    running = {"state": "running", **killed, "slurm_job_id": "7_1", "slurm_raw_job_id": "8"}
    _submitted_run(store, "e/killed-1", dict(running), {**killed, "slurm_job_id": "8", "token": "k"})
    reconcile_run(store, "e/killed-1", {"7_1": "PENDING"})
    assert store.state("e/killed-1") == "pending" and store.status("e/killed-1")["requeued"]
    assert read_claim(store.run_dir("e/killed-1"))["token"] == "k"    # left for the next attempt to take over
    # Its next attempt has claimed the run already (another pid or restart): left to it.
    _submitted_run(store, "e/next-1", dict(running), {**killed, "slurm_restarts": 1, "slurm_job_id": "8",
                                                      "token": "n"})
    reconcile_run(store, "e/next-1", {"7_1": "PENDING"})
    assert store.state("e/next-1") == "running"
    # Running under SLURM's account: left alone.
    _submitted_run(store, "e/live-1", dict(running), {**killed, "slurm_job_id": "8", "token": "l"})
    reconcile_run(store, "e/live-1", {"7_1": "RUNNING"})
    assert store.state("e/live-1") == "running"


def test_a_job_that_reached_its_time_limit_reads_timeout_not_cancelled(tmp_path, monkeypatch, capsys):
    """At the time limit, without the SIGUSR2 warning handled first, SLURM sends SIGTERM: the job recorded its run
    cancelled, as if someone had scancel'd it, and `status`/`show` said cancelled. SLURM's account says TIMEOUT."""
    store = RunStore(tmp_path / "results")
    stopped = {"state": "cancelled", "error": "RunCancelled", "slurm_job_id": "7_1", "slurm_raw_job_id": "8"}
    run_dir = _submitted_run(store, "e/timed-out-1", dict(stopped), None)
    with zipfile.ZipFile(run_dir / "checkpoint.pt", "w") as checkpoint:     # as torch.save writes one
        checkpoint.writestr("step", "3")
    bin_dir = fake_sacct(tmp_path / "bin", "7_1|TIMEOUT")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(store.root))
    assert main(["status"]) == 0
    header, row = (line.split() for line in capsys.readouterr().out.splitlines()[:2])
    counts = dict(zip(header[2:], row[2:]))
    assert (counts["cancelled"], counts["failed"]) == ("0", "1")
    error = store.status("e/timed-out-1")["error"]
    assert error.startswith("SLURM job 7_1 ended TIMEOUT before the run finished: it reached its time limit")
    assert "raise --slurm-time-min" in error and "running it again resumes it from its checkpoint" in error
    assert "MemoryError: the last line of the job log" in store.error_text("e/timed-out-1")
    # Cancelled for good (scancel): still cancelled. Recorded by another job: not this job's time limit.
    _submitted_run(store, "e/scancelled-1", dict(stopped), None)
    reconcile_run(store, "e/scancelled-1", {"7_1": "CANCELLED"})
    assert store.state("e/scancelled-1") == "cancelled"
    _submitted_run(store, "e/other-1", {**stopped, "slurm_job_id": "5_0"}, None)
    reconcile_run(store, "e/other-1", {"7_1": "TIMEOUT"})
    assert store.status("e/other-1")["error"] == "RunCancelled"


def test_a_killed_jobs_log_tail_shows_a_progress_bar_once(tmp_path):
    """The job's stderr holds tqdm's redraws, separated by carriage returns: the error keeps the last one, as a
    terminal shows it, and the lines after it, not 30 redraws that push SLURM's own message out of sight."""
    store = RunStore(tmp_path)
    run_dir = _submitted_run(store, "e/killed-1", {"state": "pending"}, None)
    bar = "".join(f"\rpretrain e:  {i}%|  | {i}/100 [00:01<00:10]" for i in range(60))    # as tqdm draws
    (run_dir / "job.err").write_text("submitit INFO - Starting\n" + bar + "srun: error: vm: task 0: Killed\n"
                                     "srun: Force Terminated StepId=16.0\n")
    reconcile_run(store, "e/killed-1", {"7_1": "FAILED"})
    assert store.error_text("e/killed-1").splitlines()[1:] == [
        f"last lines of {run_dir / 'job.err'}:", "submitit INFO - Starting",
        "pretrain e:  59%|  | 59/100 [00:01<00:10]srun: error: vm: task 0: Killed",
        "srun: Force Terminated StepId=16.0"]


def fake_sacct(folder: Path, answer: str) -> Path:
    """A `sacct` that prints `answer` ('JOBID|STATE' lines), as the real one does for the asked job ids."""
    folder.mkdir(exist_ok=True)
    script = folder / "sacct"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' '{answer}'\n")
    script.chmod(0o755)
    return folder


def test_a_job_sacct_does_not_list_yet_is_asked_of_squeue(tmp_path, monkeypatch):
    """slurmdbd hears of a job later than the controller: a job submitted a moment ago is missing from sacct while
    an older one is listed. Its state comes from squeue, so that a second `run` does not submit it again."""
    from registry.slurm_state import job_states

    bin_dir = fake_sacct(tmp_path / "bin", "10|RUNNING")
    (bin_dir / "squeue").write_text("#!/bin/sh\nprintf '%s\\n' '10|RUNNING' '31_[0-1]|PENDING'\n")
    (bin_dir / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert job_states(["10", "31_1"]) == {"10": "RUNNING", "31_1": "PENDING"}


def test_status_records_jobs_that_ended_unrecorded(tmp_path, monkeypatch, capsys):
    """A job cancelled while queued (or killed) leaves its run pending (or running): `status`, not only `show`,
    asks SLURM and counts it cancelled (or failed)."""
    store = RunStore(tmp_path / "results")
    queued, killed = "loss_variant/queued-1", "loss_variant/killed-1"
    _submitted_run(store, queued, {"state": "pending"}, None)
    (store.run_dir(killed)).mkdir(parents=True)
    (store.run_dir(killed) / SUBMISSION_NAME).write_text(json.dumps({"job_id": "7_2"}))
    store.write_status(killed, "running", slurm_job_id="7_2", slurm_raw_job_id="9")
    (store.run_dir(killed) / CLAIM_NAME).write_text(json.dumps({"host": "node-elsewhere", "pid": 1,
                                                                "slurm_job_id": "9", "token": "t"}))
    bin_dir = fake_sacct(tmp_path / "bin", "7_1|CANCELLED by 0\n7_2|FAILED")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(store.root))
    assert main(["status"]) == 0
    header, row = (line.split() for line in capsys.readouterr().out.splitlines()[:2])
    counts = dict(zip(header[2:], row[2:]))
    assert (counts["pending"], counts["running"], counts["cancelled"], counts["failed"]) == ("0", "0", "1", "1")
    assert store.state(queued) == "cancelled" and store.state(killed) == "failed"


def test_signals_stop_only_rank_0_and_only_while_training():
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR2)}
    try:
        lead = _Signals(rank=0)
        lead.install()
        os.kill(os.getpid(), signal.SIGUSR2)          # while starting: remembered, not raised
        assert lead.usr2
        with pytest.raises(RunPreempted):
            lead.arm()
        lead = _Signals(rank=0)
        lead.install()
        lead.arm()
        with pytest.raises(RunCancelled) as stopped:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        assert not isinstance(stopped.value, RunPreempted) and not lead.armed
        other = _Signals(rank=1)
        other.install()
        other.arm()
        os.kill(os.getpid(), signal.SIGTERM)          # rank 1 keeps going until rank 0 leaves the collectives
        os.kill(os.getpid(), signal.SIGUSR2)
        assert other.term and other.usr2
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_checkpoint_resubmits_a_fresh_task_for_the_same_run(tmp_path):
    run = smoke_runs()[0]
    task = SlurmRunTask(run, tmp_path, "simclr_core.train:train", {"git_sha": "abc"}, checkpoint_within_s=45,
                        sigterm_checkpoint_within_s=10)
    delayed = task.checkpoint()
    assert delayed.function is not task and isinstance(delayed.function, SlurmRunTask)
    again = delayed.function
    assert (again.run, again.results_dir, again.train_fn, again.code, again.checkpoint_within_s,
            again.sigterm_checkpoint_within_s) == (run, str(tmp_path), "simclr_core.train:train", {"git_sha": "abc"},
                                                   45, 10)


@pytest.fixture
def own_signal_handlers():
    """The test installs _Signals; SIGTERM's and SIGUSR2's handlers are put back afterwards."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR2)}
    yield
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def interrupted_while_waiting(seconds: float = 60.0) -> None:
    """Sleep until a signal handler raises (the test fails if none does within `seconds`)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)


@contextlib.contextmanager
def armed_signals(rank: int, checkpoint_within_s: float, training_loop: bool,
                  sigterm_checkpoint_within_s: float = 0.0) -> Iterator[_Signals]:
    """_Signals installed and armed as in a job's training, with train()'s loop listening for a stop request (as
    while it trains) or not (as while it loads its data, or evaluates); disarmed afterwards."""
    signals = _Signals(rank=rank, checkpoint_within_s=checkpoint_within_s,
                       sigterm_checkpoint_within_s=sigterm_checkpoint_within_s)
    signals.install()
    signals.arm()
    if training_loop:
        stop_request.listen()
    try:
        yield signals
    finally:
        stop_request.stop_listening()
        signals.disarm()


def test_sigusr2_asks_a_training_loop_for_a_checkpoint_and_a_second_one_stops_at_once(own_signal_handlers):
    for rank in (0, 1):
        with armed_signals(rank, checkpoint_within_s=600, training_loop=True) as signals:
            os.kill(os.getpid(), signal.SIGUSR2)      # the training loop listens: asked, nothing raised
            time.sleep(0.1)
            assert stop_request.requested() and signals.armed
            if rank == 0:
                with pytest.raises(RunPreempted):
                    os.kill(os.getpid(), signal.SIGUSR2)
                    interrupted_while_waiting()
            else:
                os.kill(os.getpid(), signal.SIGUSR2)  # rank 1 keeps going until rank 0 leaves the collectives


def test_a_checkpoint_that_does_not_come_in_time_stops_training_at_once(own_signal_handlers):
    with armed_signals(0, checkpoint_within_s=0.2, training_loop=True), pytest.raises(RunPreempted):
        os.kill(os.getpid(), signal.SIGUSR2)
        interrupted_while_waiting()


def test_sigusr2_outside_the_training_loop_stops_at_once(own_signal_handlers):
    # e.g. train() loading its data, or evaluating
    with armed_signals(0, checkpoint_within_s=600, training_loop=False), pytest.raises(RunPreempted):
        os.kill(os.getpid(), signal.SIGUSR2)
        interrupted_while_waiting()


def test_sigterm_asks_a_training_loop_for_a_checkpoint_within_its_bound(own_signal_handlers):
    """scancel, a preemption or the time limit sends SIGTERM, then SIGKILL KillWait seconds later: training stopped at
    once and the next attempt lost the steps since the last periodic checkpoint."""
    with armed_signals(0, checkpoint_within_s=600, training_loop=True, sigterm_checkpoint_within_s=600) as signals:
        os.kill(os.getpid(), signal.SIGTERM)          # the training loop listens: asked, nothing raised
        os.kill(os.getpid(), signal.SIGTERM)          # SLURM's again, as srun relays it: still waiting
        time.sleep(0.1)
        assert stop_request.requested() and signals.armed
    with armed_signals(0, checkpoint_within_s=600, training_loop=True, sigterm_checkpoint_within_s=0.2), \
            pytest.raises(RunCancelled) as stopped:   # the checkpoint did not come in time: at once
        os.kill(os.getpid(), signal.SIGTERM)
        interrupted_while_waiting()
    assert not isinstance(stopped.value, RunPreempted)
    with armed_signals(0, checkpoint_within_s=600, training_loop=True, sigterm_checkpoint_within_s=0), \
            pytest.raises(RunCancelled):              # KillWait unknown: at once, as before
        os.kill(os.getpid(), signal.SIGTERM)
        interrupted_while_waiting()
    assert not stop_request.requested()


def test_the_sigterm_checkpoint_takes_a_third_of_slurms_kill_wait(tmp_path, monkeypatch):
    from registry.slurm import sigterm_checkpoint_within_s

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text("#!/bin/sh\nprintf '%s\\n' 'JobAcctGatherType       = jobacct_gather/none' "
                        "'KillOnBadExit           = 0' 'KillWait                = 30 sec'\n")
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert sigterm_checkpoint_within_s() == 10
    scontrol.write_text("#!/bin/sh\necho 'slurm_load_ctl_conf error: Unable to contact slurm controller' >&2\n"
                        "exit 1\n")
    assert sigterm_checkpoint_within_s() == 0


def lead_with_signal_during_step_3(tmp_path, monkeypatch, signum: int, signals: _Signals):
    """A SLURM task's lead process training a smoke run (8 steps, logged every 2, periodic checkpoints every 3) that
    gets `signum` during step 3: (the run, the exception _lead raised, what submitit's SIGUSR2 handler was called
    with: checkpoint + requeue)."""
    import simclr_core.train as train_module

    run = smoke_runs({**QUICK, "max_steps": 8, "checkpoint_every_steps": 3, "log_every_steps": 2})[0]
    real = train_module.warmup_cosine

    def signalled_during_step_3(step, *args):
        if step + 1 == 3:
            os.kill(os.getpid(), signum)
        return real(step, *args)

    monkeypatch.setattr(train_module, "warmup_cosine", signalled_during_step_3)
    requeued = []
    env = SimpleNamespace(job_id="7_1", raw_job_id="8", hostnames=["node1"], num_tasks=1, global_rank=0)
    submitit_usr2 = lambda signum, frame: requeued.append(signum)  # noqa: E731  (checkpoint() + requeue)
    signals.install()
    with pytest.raises(RunCancelled) as stopped:       # RunPreempted is a RunCancelled
        SlurmRunTask(run, tmp_path, "simclr_core.train:train")._lead(env, signals, None, submitit_usr2)
    return run, stopped.value, requeued


def test_sigterm_during_training_saves_a_checkpoint_at_the_next_logging_step_then_stops(tmp_path, monkeypatch,
                                                                                         own_signal_handlers):
    import registry.slurm_job as slurm_job

    monkeypatch.setattr(slurm_job, "PREEMPT_GRACE_S", 0.1)        # no SIGUSR2 follows: not a requeue
    signals = _Signals(rank=0, checkpoint_within_s=600, sigterm_checkpoint_within_s=600)
    run, stopped, requeued = lead_with_signal_during_step_3(tmp_path, monkeypatch, signal.SIGTERM, signals)
    assert "SIGTERM during training: checkpoint saved at step 4; stopped" in str(stopped)
    assert not isinstance(stopped, RunPreempted)
    store = RunStore(tmp_path)
    assert checkpoint_step(store.run_dir(run.run_id)) == 4          # the periodic one was 3
    assert store.status(run.run_id)["state"] == "cancelled" and requeued == []
    assert metric_steps(store.run_dir(run.run_id)) == [2, 4]


def test_sigusr2_during_training_saves_a_checkpoint_at_the_next_logging_step_then_requeues(tmp_path, monkeypatch,
                                                                                           own_signal_handlers):
    """SLURM's time-limit warning stopped training at once: the requeued job resumed from the last periodic
    checkpoint (every checkpoint_every_steps, 200 by default) and trained those steps again."""
    signals = _Signals(rank=0, checkpoint_within_s=600)
    run, stopped, requeued = lead_with_signal_during_step_3(tmp_path, monkeypatch, signal.SIGUSR2, signals)
    assert isinstance(stopped, RunPreempted) and "checkpoint saved at step 4" in str(stopped)
    store = RunStore(tmp_path)
    assert checkpoint_step(store.run_dir(run.run_id)) == 4          # the periodic one was 3
    assert store.status(run.run_id)["state"] == "pending" and requeued == [signal.SIGUSR2]
    assert metric_steps(store.run_dir(run.run_id)) == [2, 4]


# ---- a real cluster ----------------------------------------------------------------------------------------
@pytest.mark.slurm
def test_cli_runs_a_smoke_ablation_as_a_job_array(partition, tmp_path):
    config = tmp_path / "slurm.toml"
    config.write_text(f'partition = "{partition}"\ntime_min = 600\ncpus_per_task = 1\narray_parallelism = 2\n')
    env = {**os.environ, "PYTHONPATH": str(REPO), "SIMCLR_RESULTS_DIR": str(tmp_path / "results"),
           "SIMCLR_SLURM_CONFIG": str(config)}
    done = subprocess.run([sys.executable, "-m", "registry", "run", "head_type", "--scale", "smoke", "--slurm",
                           "--slurm-wait", "--slurm-time-min", "20", "--only", "linear+32", "--only", "nonlinear+32",
                           "data.image_size=16", "batch_size=16"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "summary: 2 done" in done.stdout
    store = RunStore(tmp_path / "results")
    run_ids = list(store.run_ids())
    assert len(run_ids) == 2 and all(store.is_done(r) for r in run_ids)
    job_ids = [store.status(r)["slurm_job_id"] for r in run_ids]
    array = {j.partition("_")[0] for j in job_ids}
    assert len(array) == 1 and sorted(j.partition("_")[2] for j in job_ids) == ["0", "1"]   # one array
    for run_id in run_ids:
        submission = json.loads((store.run_dir(run_id) / SUBMISSION_NAME).read_text())
        assert submission["job_id"] == store.status(run_id)["slurm_job_id"]
        assert "time_min=20" in submission["settings"] and f"partition={partition}" in submission["settings"]
        assert not (store.run_dir(run_id) / CLAIM_NAME).exists()
    again = subprocess.run(done.args, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert again.returncode == 0 and again.stdout.count("done already") == 2, again.stdout + again.stderr


@pytest.mark.slurm
def test_data_this_machine_sees_is_checked_before_submission_and_data_it_lacks_is_a_note(partition, tmp_path,
                                                                                          monkeypatch, capsys):
    """A job that cannot train (a batch larger than its images) waited in the queue to fail; data that only the
    nodes see (a node-local path, a setup line) must not stop the submission."""
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(tmp_path))
    code = main(["run", "head_type", "--scale", "smoke", "--slurm", "--slurm-time-min", "5", "--slurm-partition",
                 partition, "--only", "linear+32", "data.train_limit=64", "batch_size=128"])
    err = capsys.readouterr().err
    assert code == 2 and err.endswith("batch_size=128 exceeds the 64 training images of 'cifar10_subset'; choose "
                                      "batch_size <= 64\nNo job was submitted.\n"), err
    assert not list(tmp_path.glob(f"*/*/{SUBMISSION_NAME}")) and not list(tmp_path.glob("*/*/status.json"))
    runs = get_experiment("head_type").runs("smoke", {"data.dataset": "cifar10", "data.data_dir": str(tmp_path / "x")})
    executor(load_settings(overrides={"partition": partition, "time_min": 5})).check(runs)
    err = capsys.readouterr().err
    assert err.count("note: ") == 1 and f"note: {runs[0].run_id}: not checked before submission, since each job " \
        "checks on its node, which may differ from this machine: cifar10: no 'train' split found" in err
    import numpy as np
    from PIL import Image

    for split in ("train", "test"):
        for label in ("a", "b"):
            (tmp_path / "folder" / split / label).mkdir(parents=True)
            for i in range(4):
                Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(tmp_path / "folder" / split / label / f"{i}.png")
    (tmp_path / "a file").write_text("")
    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "a file" / "cache"))   # a node's setup line may set its own
    folder_runs = get_experiment("head_type").runs("smoke", {
        "data.dataset": "imagefolder", "data.data_dir": str(tmp_path / "folder"), "data.loader": "resident",
        "data.train_limit": None, "data.test_limit": None, "batch_size": 4})
    executor(load_settings(overrides={"partition": partition, "time_min": 5})).check(folder_runs)
    err = capsys.readouterr().err
    assert err.count("note: ") == 1 and "which may differ from this machine: cannot write" in err


@pytest.mark.slurm
def test_two_tasks_train_one_run_with_two_gloo_processes(partition, tmp_path):
    runs = smoke_runs()
    slurm = executor(SlurmSettings(tasks_per_node=2, cpus_per_task=1, time_min=20), wait=True)
    [outcome] = slurm.dispatch(runs, tmp_path)
    assert outcome.state == "done", outcome
    store = RunStore(tmp_path)
    final = store.final(runs[0].run_id)
    assert final["processes"] == 2 and store.status(runs[0].run_id)["processes"] == 2
    ranks = slurm.jobs[runs[0].run_id].results()
    assert [o.detail for o in ranks] == ["trained", "rank 1 of 2"] and all(o.state == "done" for o in ranks)


def preempt_and_check_resumed(slurm, results: Path, steps: int, timeout: float) -> dict:
    """Submit one smoke run of `steps` steps through `slurm` (wait=False), preempt its job once it has passed a
    checkpoint (submitit's SIGTERM then SIGUSR2: checkpoint() + scontrol requeue), and check that the requeued job
    resumed from the checkpoint saved where it stopped and finished with every step logged once. The run's final
    status."""
    runs = smoke_runs({**QUICK, "max_steps": steps})
    store = RunStore(results)
    run_dir = store.run_dir(runs[0].run_id)
    [outcome] = slurm.dispatch(runs, results)
    assert outcome.state == "submitted"
    wait_for(lambda: max(metric_steps(run_dir), default=0) >= 7, timeout, "step 7 (a checkpoint at step 5)", 0.1)
    slurm.jobs[runs[0].run_id]._interrupt()
    reached = max(metric_steps(run_dir))
    # final.json comes first, then status.json says done: wait for the second (reading between them is a race).
    wait_for(lambda: (store.status(runs[0].run_id) or {}).get("state") == "done", 1.5 * timeout,
             "the requeued job to finish", 1.0)

    status = store.status(runs[0].run_id)
    assert status["state"] == "done" and status["attempt"] == 2 and status["slurm_restarts"] == 1, status
    assert status["requeued"] and status["resumed"] is True
    assert reached <= status["resumed_from_step"] < steps, status
    assert metric_steps(run_dir) == list(range(1, steps + 1))       # continued, no step repeated or lost
    log = Path(json.loads((run_dir / SUBMISSION_NAME).read_text())["stdout"]).read_text()
    resumed = status["resumed_from_step"]
    assert f"checkpoint saved at step {resumed}" in log and f"resumed from step {resumed}" in log, log
    [again] = slurm.dispatch(runs, results)
    assert again.state == "skipped" and "done already" in again.detail
    return {**status, "final": store.final(runs[0].run_id)}


@pytest.mark.slurm
def test_a_preempted_job_is_requeued_and_resumes_from_its_checkpoint(partition, tmp_path):
    preempt_and_check_resumed(executor(SlurmSettings(cpus_per_task=1, time_min=60), wait=False), tmp_path,
                              steps=60, timeout=120)


@pytest.mark.slurm
def test_a_time_limit_warning_checkpoints_where_training_stops_and_the_requeued_job_resumes_there(partition, tmp_path):
    """SLURM's SIGUSR2 before the time limit stopped training at once: the requeued job resumed from the last periodic
    checkpoint, here none (checkpoint_every_steps beyond the run), so it trained from step 0 again."""
    steps = 60
    runs = smoke_runs({**QUICK, "max_steps": steps, "checkpoint_every_steps": 1000})
    store = RunStore(tmp_path)
    run_dir = store.run_dir(runs[0].run_id)
    slurm = executor(SlurmSettings(cpus_per_task=1, time_min=60), wait=False)
    [outcome] = slurm.dispatch(runs, tmp_path)
    assert outcome.state == "submitted"
    wait_for(lambda: max(metric_steps(run_dir), default=0) >= 7, 120, "step 7", 0.1)
    slurm.jobs[runs[0].run_id]._interrupt(timeout=True)     # the time-limit warning: SIGUSR2 alone
    reached = max(metric_steps(run_dir))
    wait_for(lambda: (store.status(runs[0].run_id) or {}).get("state") == "done", 180,
             "the requeued job to finish", 1.0)

    status = store.status(runs[0].run_id)
    assert status["attempt"] == 2 and status["slurm_restarts"] == 1 and status["requeued"], status
    assert status["resumed_from_step"] is not None and reached <= status["resumed_from_step"] < steps, status
    assert metric_steps(run_dir) == list(range(1, steps + 1))       # continued, no step repeated or lost
    log = Path(json.loads((run_dir / SUBMISSION_NAME).read_text())["stdout"]).read_text()
    resumed = status["resumed_from_step"]
    assert f"checkpoint saved at step {resumed}; requeueing" in log and f"resumed from step {resumed}" in log, log
    print(f"warning sent at step {reached}, resumed from step {resumed}")


@pytest.mark.slurm
def test_cancelled_jobs_are_recorded_cancelled_whether_running_or_queued(partition, tmp_path):
    runs = smoke_runs({**QUICK, "max_steps": 100_000}, count=2)
    store = RunStore(tmp_path)
    slurm = executor(SlurmSettings(cpus_per_task=1, time_min=60, array_parallelism=1), wait=True)
    result: dict = {}
    waiting = threading.Thread(target=lambda: result.update(outcomes=slurm.dispatch(runs, tmp_path)), daemon=True)
    waiting.start()
    first, second = (r.run_id for r in runs)
    wait_for(lambda: metric_steps(store.run_dir(first)), 120, "the first run to train")
    assert store.state(second) == "pending"                  # array parallelism 1: still queued
    job_id = slurm.jobs[first].job_id
    array_id = job_id.partition("_")[0]
    queued = executor(SlurmSettings(time_min=60), wait=False).dispatch(runs, tmp_path)
    assert [o.state for o in queued] == ["skipped", "skipped"] and "in SLURM job" in queued[1].detail

    subprocess.run(["scancel", array_id], check=True)
    waiting.join(timeout=120)
    assert not waiting.is_alive(), "dispatch(wait=True) did not return after scancel"
    assert [o.state for o in result["outcomes"]] == ["cancelled", "cancelled"], result["outcomes"]
    # Running: SIGTERM -> RunCancelled in the job. Queued: reconciled from the job's CANCELLED state.
    assert store.status(first)["error"] == "RunCancelled"
    assert "ended CANCELLED" in store.status(second)["error"]
    assert not any((store.run_dir(r) / CLAIM_NAME).exists() for r in (first, second))


@pytest.mark.slurm
def test_a_second_submitter_meanwhile_sees_the_first_ones_jobs(partition, tmp_path, monkeypatch):
    """Two `run --slurm` of the same runs at once: the second waits until the first has submitted, then skips the
    runs its jobs hold, instead of submitting a second job for each."""
    import registry.slurm as slurm_module

    runs = smoke_runs({**QUICK, "max_steps": 100_000})       # still queued or training when the test ends
    first, second = (executor(SlurmSettings(cpus_per_task=1, time_min=60), wait=False) for _ in range(2))
    waiting = threading.Event()
    monkeypatch.setattr(slurm_module, "announce_wait", lambda lock_file: waiting.set(), raising=False)
    result: dict = {}
    other = threading.Thread(target=lambda: result.update(outcomes=second.dispatch(runs, tmp_path)), daemon=True)
    submit = first._submit

    def submit_while_another_dispatches(*args, **kwargs):
        other.start()
        wait_for(lambda: waiting.is_set() or not other.is_alive(), 120, "the second submitter to wait or finish")
        return submit(*args, **kwargs)

    monkeypatch.setattr(first, "_submit", submit_while_another_dispatches)
    try:
        [mine] = first.dispatch(runs, tmp_path)
        other.join(timeout=120)
        assert mine.state == "submitted"
        [theirs] = result["outcomes"]
        assert theirs.state == "skipped" and f"in SLURM job {first.jobs[runs[0].run_id].job_id}" in theirs.detail
    finally:
        for job in [*first.jobs.values(), *second.jobs.values()]:
            subprocess.run(["scancel", str(job.job_id)], check=False)


@pytest.mark.slurm
def test_an_unknown_partition_surfaces_sbatchs_error(partition, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(tmp_path))
    code = main(["run", "head_type", "--scale", "smoke", "--slurm", "--slurm-time-min", "5",
                 "--slurm-partition", "no_such_partition", "--only", "linear+32"])
    err = capsys.readouterr().err
    assert code == 2 and "sbatch refused the job" in err and "invalid partition" in err.lower(), err
    assert not list(tmp_path.glob(f"*/*/{SUBMISSION_NAME}"))
