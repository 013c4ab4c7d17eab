"""Dispatch: execute_run's records, the local executors, and claims between two real processes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import fake_train
from fake_train import (CRASH_SEED, DISK_FULL_SEED, FAIL_SEED, INTERRUPT_SEED, checked_train, counting_train,
                        no_final_train, write_fake_checkpoint)
from registry.claim import read_claim
from registry.declare import Run
from registry.launch import LocalExecutor, execute_run, make_executor
from registry.store import RunStore
from simclr_core.config import DataConfig, EvalConfig, RunConfig
from simclr_core.validation import ConfigError

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def make_runs(*seeds: int) -> list[Run]:
    return [Run(f"toy/s{seed}-{seed:012d}", "toy", "smoke", {"seed": seed}, RunConfig(seed=seed)) for seed in seeds]


def executions(store: RunStore, run: Run) -> list[str]:
    log = store.run_dir(run.run_id) / "executions.log"
    return log.read_text().splitlines() if log.exists() else []


def test_failed_run_records_its_traceback_and_the_others_continue(results):
    runs = make_runs(1, FAIL_SEED, 2)
    outcomes = LocalExecutor(train_fn=counting_train).dispatch(runs, results)
    assert [o.state for o in outcomes] == ["done", "failed", "done"]
    store = RunStore(results)
    failed = runs[1].run_id
    assert store.state(failed) == "failed"
    traceback_text = store.error_text(failed)
    assert traceback_text.startswith("Traceback (most recent call last)") and "RuntimeError: boom" in traceback_text
    assert "RuntimeError: boom" in store.status(failed)["error"] and outcomes[1].detail.startswith("RuntimeError")
    assert [store.state(r.run_id) for r in (runs[0], runs[2])] == ["done", "done"]
    assert store.final(runs[0].run_id)["knn_top1"] == 31.0
    assert read_claim(store.run_dir(failed)) is None            # claims are released


def test_the_check_asks_the_training_function_once_per_data_evaluation_settings_and_batch_size(monkeypatch):
    monkeypatch.setattr(fake_train, "PREFLIGHT_CALLS", [])
    runs = make_runs(1, 2, 3)                        # the same data and evaluation: one question
    other_eval = Run("toy/k5-000000000004", "toy", "smoke", {"seed": 4}, RunConfig(seed=4, eval=EvalConfig(knn_k=5)))
    other_data = Run("toy/d-000000000005", "toy", "smoke", {"seed": 5},
                     RunConfig(seed=5, data=DataConfig(data_dir="/elsewhere")))
    other_batch = Run("toy/b-000000000006", "toy", "smoke", {"seed": 6}, RunConfig(seed=6, batch_size=8))
    LocalExecutor(train_fn=checked_train).check([*runs, other_eval, other_data, other_batch])
    assert [cfg.seed for cfg in fake_train.PREFLIGHT_CALLS] == [1, 4, 5, 6]
    LocalExecutor(train_fn=counting_train).check(runs)   # a training function without a preflight: nothing to ask
    assert len(fake_train.PREFLIGHT_CALLS) == 4


def test_missing_data_is_one_error_naming_the_run_before_any_run_starts():
    runs = [Run(f"toy/m{seed}-{seed:012d}", "toy", "smoke", {"seed": seed},
                RunConfig(seed=seed, data=DataConfig(data_dir="/data/missing"))) for seed in (1, 2)]
    with pytest.raises(ConfigError) as error:
        LocalExecutor(train_fn=checked_train).check(runs)
    assert str(error.value).startswith(f"{runs[0].run_id}: no data in /data/missing")
    assert str(error.value).endswith("No run was started.")


def test_train_offers_its_input_checks_as_its_preflight():
    from simclr_core.train import check_inputs, train

    assert train.preflight is check_inputs


def test_running_again_skips_done_runs_and_retries_failed_ones(results):
    runs = make_runs(1, FAIL_SEED)
    executor = LocalExecutor(train_fn=counting_train)
    executor.dispatch(runs, results)
    outcomes = executor.dispatch(runs, results)
    assert [o.state for o in outcomes] == ["skipped", "failed"]
    store = RunStore(results)
    assert len(executions(store, runs[0])) == 1 and len(executions(store, runs[1])) == 2
    assert store.status(runs[1].run_id)["attempt"] == 2


def test_a_run_with_a_checkpoint_resumes(results):
    run = make_runs(3)[0]
    store = RunStore(results)
    store.run_dir(run.run_id).mkdir(parents=True)
    write_fake_checkpoint(store.run_dir(run.run_id) / "checkpoint.pt")
    outcome = execute_run(run, results, counting_train)
    assert outcome.state == "done" and outcome.detail == "resumed from checkpoint"
    assert executions(store, run) == [executions(store, run)[0]] and "resumed=True" in executions(store, run)[0]
    assert store.status(run.run_id)["resumed"] is True


def test_metrics_are_stored_even_if_the_training_function_wrote_no_final_json(results):
    run = make_runs(4)[0]
    assert execute_run(run, results, no_final_train).state == "done"
    assert RunStore(results).final(run.run_id) == {"linear_top1": 12.5}


def test_train_function_by_name_is_imported_in_the_worker(results):
    run = make_runs(5)[0]
    assert execute_run(run, results, "fake_train:counting_train").state == "done"


def test_interrupt_marks_the_run_cancelled_and_propagates(results):
    run = make_runs(INTERRUPT_SEED)[0]
    with pytest.raises(KeyboardInterrupt):
        execute_run(run, results, counting_train)
    store = RunStore(results)
    assert store.state(run.run_id) == "cancelled" and read_claim(store.run_dir(run.run_id)) is None


def test_pool_isolates_a_crashing_run(results):
    runs = make_runs(1, CRASH_SEED, 2, FAIL_SEED)
    seen = []
    outcomes = LocalExecutor(max_parallel=2, train_fn=counting_train, on_outcome=seen.append).dispatch(runs, results)
    assert [o.state for o in outcomes] == ["done", "failed", "done", "failed"]
    assert sorted(o.run_id for o in seen) == sorted(r.run_id for r in runs)
    assert "died (exit code 3)" in outcomes[1].detail
    store = RunStore(results)
    crashed = runs[1].run_id
    assert store.state(crashed) == "failed" and "died (exit code 3)" in store.error_text(crashed)
    assert read_claim(store.run_dir(crashed)) is None
    assert "RuntimeError: boom" in store.error_text(runs[3].run_id)
    pids = {executions(store, r)[0].split()[0] for r in runs}
    assert len(pids) == 4                                         # every run had its own process


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this platform")
def test_pool_processes_share_the_cpus_this_process_may_use_not_the_machine_s(results, monkeypatch):
    # As under taskset or a SLURM allocation on a 64-CPU node: one CPU allowed, two processes -> 1 thread each,
    # not 64 // 2 = 32 each on the one CPU.
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        outcomes = LocalExecutor(max_parallel=2, train_fn="fake_train:thread_reporting_train").dispatch(
            make_runs(1, 2), results)
    finally:
        os.sched_setaffinity(0, before)
    assert [o.state for o in outcomes] == ["done", "done"], outcomes
    store = RunStore(results)
    for run in make_runs(1, 2):
        assert store.final(run.run_id) == {"omp_threads": 1.0, "torch_threads": 1.0}


@pytest.mark.parametrize("parallel", [1, 2])
def test_a_full_disk_starts_no_more_runs(results, parallel):
    # Every later run would train for its whole time only to fail the same way at its first checkpoint.
    runs = make_runs(1, DISK_FULL_SEED, 2, 3, 4)
    outcomes = LocalExecutor(max_parallel=parallel, train_fn=counting_train).dispatch(runs, results)
    full = outcomes[1]
    assert full.state == "failed" and full.disk_refused and "No space left on device" in full.detail
    store = RunStore(results)
    started = [r for r in runs if executions(store, r)]
    assert runs[:2] == started[:2] and len(started) <= parallel + 1       # parallel: those already training end
    for run, outcome in zip(runs, outcomes):
        if run not in started:
            assert outcome.state == "skipped" and outcome.detail == (
                f"not started: the disk refused a write ({full.run_id})"), outcome
    assert [o.state for o in outcomes[:2]] == ["done", "failed"] and not outcomes[0].disk_refused


TWO_PROCESSES = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    sys.path.insert(0, {here!r})
    from registry.declare import Run
    from registry.launch import LocalExecutor
    from simclr_core.config import RunConfig

    if __name__ == "__main__":   # spawned workers import this file again
        results, go, parallel = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
        runs = [Run(f"toy/s{{s}}-{{s:012d}}", "toy", "smoke", {{"seed": s}}, RunConfig(seed=s)) for s in range(8)]
        while not go.exists():
            time.sleep(0.01)
        outcomes = LocalExecutor(max_parallel=parallel, train_fn="fake_train:counting_train").dispatch(runs, results)
        print(json.dumps([o.state for o in outcomes]))
""")


@pytest.mark.parametrize("parallel", [1, 2])
def test_two_concurrent_run_commands_never_run_a_run_twice(results, tmp_path, parallel):
    script = tmp_path / "dispatch.py"
    script.write_text(TWO_PROCESSES.format(here=str(HERE)))
    go = tmp_path / "go"
    env = {**os.environ, "FAKE_TRAIN_SLEEP": "0.3", "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, str(script), str(results), str(go), str(parallel)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    time.sleep(1.0)   # let both import and wait at the barrier
    go.touch()
    states = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        states.append(json.loads(out.strip().splitlines()[-1]))
    store = RunStore(results)
    runs = make_runs(*range(8))
    for run in runs:                                   # executed exactly once, and finished
        assert len(executions(store, run)) == 1, run.run_id
        assert store.state(run.run_id) == "done"
    per_run = list(zip(*states))
    assert all(sorted(pair) == ["done", "skipped"] for pair in per_run), per_run
    assert all("done" in process_states for process_states in states), states   # they really competed


INTERRUPTED = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, {here!r})
    from registry.declare import Run
    from registry.launch import LocalExecutor, raise_on_sigterm
    from simclr_core.config import RunConfig

    if __name__ == "__main__":
        raise_on_sigterm()
        runs = [Run(f"toy/s{{s}}-{{s:012d}}", "toy", "smoke", {{"seed": s}}, RunConfig(seed=s)) for s in range(3)]
        LocalExecutor(max_parallel=int(sys.argv[2]), train_fn="fake_train:counting_train").dispatch(runs, sys.argv[1])
""")


@pytest.mark.parametrize("parallel", [1, 2])
def test_sigterm_marks_running_runs_cancelled_and_releases_them(results, tmp_path, parallel):
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED.format(here=str(HERE)))
    env = {**os.environ, "FAKE_TRAIN_SLEEP": "60", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script), str(results), str(parallel)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store, runs = RunStore(results), make_runs(0, 1, 2)
    deadline = time.time() + 60
    while sum(bool(executions(store, r)) for r in runs) < parallel and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "RunCancelled" in err
    started = [r for r in runs if executions(store, r)]
    assert len(started) == parallel                        # the rest never started
    for run in started:
        assert store.status(run.run_id)["state"] == "cancelled"
        assert read_claim(store.run_dir(run.run_id)) is None
        assert not store.is_done(run.run_id)


def test_workers_whose_launcher_was_killed_finish_their_runs_without_a_traceback(results, tmp_path):
    # `kill -9` of `registry run` (not its process group): each worker finished its run, then printed a
    # BrokenPipeError traceback on the terminal when it reported to the dead launcher.
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED.format(here=str(HERE)))
    env = {**os.environ, "FAKE_TRAIN_SLEEP": "3", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script), str(results), "2"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store, runs = RunStore(results), make_runs(0, 1, 2)
    deadline = time.time() + 60
    while sum(bool(executions(store, r)) for r in runs) < 2 and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()
    _, err = proc.communicate(timeout=60)    # the workers hold the pipe open until they end
    finished = [r for r in runs if executions(store, r)]
    assert len(finished) == 2 and all(store.state(r.run_id) == "done" for r in finished)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_executor_choices():
    with pytest.raises(ConfigError, match="positive integer"):
        LocalExecutor(max_parallel=0)
    with pytest.raises(ConfigError, match="'local', 'slurm'"):
        make_executor("kubernetes")


def _train_killed_while_saving_a_checkpoint(cfg, run_dir):
    """SIGTERM arrives inside torch.save's writes, as when `scancel` hits a run during a checkpoint."""
    import io
    import torch
    writes = []

    class KilledMidWrite(io.FileIO):
        def write(self, data):
            writes.append(len(data))
            if len(writes) == 3:
                os.kill(os.getpid(), signal.SIGTERM)
            return super().write(data)

    with KilledMidWrite(Path(run_dir) / "checkpoint.pt", "w") as f:
        torch.save({"weights": [torch.zeros(50_000) for _ in range(4)]}, f)
    return {"never": "reached"}


def test_a_sigterm_during_a_checkpoint_write_is_recorded_cancelled_not_failed(results):
    """torch.save turns the handler's RunCancelled into a RuntimeError ("unexpected pos"); the run must
    still end cancelled (and re-raise RunCancelled), not be recorded as a failed run."""
    from registry.launch import RunCancelled, raise_on_sigterm
    [run] = make_runs(7)
    previous = signal.getsignal(signal.SIGTERM)
    raise_on_sigterm()
    try:
        with pytest.raises(RunCancelled):
            execute_run(run, results, _train_killed_while_saving_a_checkpoint)
    finally:
        signal.signal(signal.SIGTERM, previous)
    status = RunStore(results).status(run.run_id)
    assert status["state"] == "cancelled" and status["error"] == "RunCancelled"
