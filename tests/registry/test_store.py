"""The results store: file layout, derived states, claims, and the long-form results table."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry.claim import CLAIM_NAME, describe_claim, is_stale, read_claim, try_claim
from registry.declare import Run
from registry.store import RESULTS_DIR_ENV, RunStore, default_results_dir, load_results
from simclr_core.config import RunConfig

REPO = Path(__file__).resolve().parents[2]
CODE = {"git_sha": "abc123", "git_dirty": False, "python": "3", "packages": {}}


def make_run(label: str = "a", temperature: float = 0.5, seed: int = 0) -> Run:
    cfg = RunConfig().with_overrides({"loss.temperature": temperature, "seed": seed})
    return Run(f"toy/{label}-0123456789ab", "toy", "smoke", {"loss.temperature": temperature}, cfg)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def write_claim(run_dir, **content) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CLAIM_NAME).write_text(json.dumps({"token": "t", **content}))


# ---- layout and states -----------------------------------------------------------------------------------
def test_results_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv(RESULTS_DIR_ENV, raising=False)
    assert str(default_results_dir()) == "results"
    monkeypatch.setenv(RESULTS_DIR_ENV, str(tmp_path / "env"))
    assert default_results_dir() == tmp_path / "env"
    assert default_results_dir(tmp_path / "flag") == tmp_path / "flag"


def test_config_and_status_round_trip(results):
    store, run = RunStore(results), make_run()
    assert store.state(run.run_id) == "pending" and list(store.run_ids()) == []
    assert store.mark_pending(run, CODE) is True
    assert store.mark_pending(run, CODE) is False           # never overwrites an existing status
    stored = store.config(run.run_id)
    assert RunConfig.from_dict(stored["config"]) == run.config
    assert stored["experiment"] == "toy" and stored["scale"] == "smoke" and stored["code"] == CODE
    assert stored["point"] == {"loss.temperature": 0.5}
    assert store.status(run.run_id)["state"] == "pending"
    assert list(store.run_ids()) == [run.run_id]


def test_a_group_shares_the_store_its_umask_allows(results):
    # tempfile makes private files (0o600) whatever the umask; a store shared by a group (umask 002) must not be
    # readable by the writer alone.
    store, run = RunStore(results), make_run()
    previous = os.umask(0o002)
    try:
        store.mark_pending(run, CODE)
        store.write_error(run.run_id, "Traceback ...")
        store.write_final(run.run_id, {"knn_top1": 0.5})
    finally:
        os.umask(previous)
    for name in ("config.json", "status.json", "error.txt", "final.json"):
        assert os.stat(store.run_dir(run.run_id) / name).st_mode & 0o777 == 0o664, name


def test_states_follow_the_files(results):
    store, run = RunStore(results), make_run()
    with try_claim(store.run_dir(run.run_id)):
        store.start_attempt(run, CODE)
        status = store.status(run.run_id)
        assert store.state(run.run_id) == "running"
        assert status["pid"] == os.getpid() and status["host"] == socket.gethostname()
        assert status["attempt"] == 1 and status["resumed"] is False and status["started"]
    # status says running but nobody holds the claim any more: the run stopped without a word
    assert store.state(run.run_id) == "cancelled"
    store.write_status(run.run_id, "failed", error="x")
    assert store.state(run.run_id) == "failed"
    assert store.status(run.run_id)["started"] == status["started"]   # earlier fields are kept
    store.write_final(run.run_id, {"linear_top1": 1.0})
    assert store.state(run.run_id) == "done"                  # final.json wins over status.json
    with pytest.raises(ValueError):
        store.write_status(run.run_id, "exploded")


def test_second_attempt_counts_and_sees_the_checkpoint(results):
    store, run = RunStore(results), make_run()
    store.start_attempt(run, CODE)
    (store.run_dir(run.run_id) / "checkpoint.pt").write_bytes(b"x")
    status = store.start_attempt(run, CODE)
    assert status["attempt"] == 2 and status["resumed"] is True


def test_redo_moves_an_interrupted_evaluations_saved_protocols_and_fine_tuning_progress_aside(results):
    # Left in place, a run trained again from scratch would find them (they are reused only for the same weights,
    # but --redo promises a folder that starts over).
    store, run = RunStore(results), make_run()
    store.start_attempt(run, CODE)
    run_dir = store.run_dir(run.run_id)
    (run_dir / "checkpoint.pt").write_bytes(b"x")
    (run_dir / "evaluation-partial.json").write_text('{"protocols": {}}')
    (run_dir / "finetune-progress.pt").write_bytes(b"state")
    moved = store.discard(run.run_id)
    assert (moved / "evaluation-partial.json").read_text() == '{"protocols": {}}'
    assert (moved / "finetune-progress.pt").read_bytes() == b"state"
    assert not (run_dir / "evaluation-partial.json").exists() and not (run_dir / "finetune-progress.pt").exists()
    assert store.state(run.run_id) == "pending"


# ---- claims ---------------------------------------------------------------------------------------------
def test_claim_is_exclusive_and_released(tmp_path):
    first = try_claim(tmp_path / "run")
    assert first is not None and try_claim(tmp_path / "run") is None   # our own live pid holds it
    assert read_claim(tmp_path / "run")["pid"] == os.getpid()
    first.release()
    assert read_claim(tmp_path / "run") is None
    assert try_claim(tmp_path / "run") is not None


def test_stale_claim_of_a_dead_process_is_broken(tmp_path):
    run_dir = tmp_path / "run"
    write_claim(run_dir, host=socket.gethostname(), pid=dead_pid(), process_started=time.time())
    assert is_stale(read_claim(run_dir)) and "[stale]" in describe_claim(read_claim(run_dir))
    claim = try_claim(run_dir)
    assert claim is not None and read_claim(run_dir)["pid"] == os.getpid()


def test_claim_of_a_reused_pid_is_stale(tmp_path):
    # Our pid is alive, but it started long after this claim was written: not the owner.
    write_claim(tmp_path, host=socket.gethostname(), pid=os.getpid(), process_started=1.0)
    assert is_stale(read_claim(tmp_path))


def test_a_claim_left_empty_by_a_kill_reads_as_cancelled_once_the_next_run_would_break_it(results):
    # A process killed between creating claim.lock and writing it: `status` counted the run as running for good,
    # though the next `run` breaks such a claim after a minute; and `run` said "claimed by ?:?".
    store, run = RunStore(results), make_run()
    store.start_attempt(run, CODE)
    claim = store.run_dir(run.run_id) / CLAIM_NAME
    claim.write_text("")
    assert store.state(run.run_id) == "running"                # its owner may be writing it right now
    assert describe_claim(read_claim(store.run_dir(run.run_id))).startswith("an empty claim.lock: its owner is "
                                                                            "writing it, or was killed while")
    an_hour_ago = time.time() - 3600
    os.utime(claim, (an_hour_ago, an_hour_ago))
    assert store.state(run.run_id) == "cancelled"
    assert try_claim(store.run_dir(run.run_id)) is not None


def test_a_claim_the_disk_cannot_hold_is_not_left_behind(tmp_path, monkeypatch):
    import errno

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match=f"could not write {tmp_path / CLAIM_NAME}: No space left on device"):
        try_claim(tmp_path)
    assert not (tmp_path / CLAIM_NAME).exists()       # an empty claim would hold the run for a minute



def test_temporaries_of_writes_a_kill_cut_short_are_removed_when_the_run_is_claimed_again(results):
    # SIGKILL between writing status.json (config.json, error.txt, final.json) aside and renaming it left
    # `.status.json.*.tmp` in the run folder for good, one more per kill.
    from fake_train import counting_train
    from registry.launch import execute_run

    store, run = RunStore(results), make_run()
    store.mark_pending(run, CODE)
    run_dir, host = store.run_dir(run.run_id), socket.gethostname()
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys\nfrom simclr_core import atomic_files\nfrom registry.store import RunStore\n"
        "atomic_files.os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
        f"RunStore({str(results)!r}).write_status({run.run_id!r}, 'running')\n")], cwd=REPO)
    assert killed.returncode == -9
    cut_short = list(run_dir.glob(".status.json.*.tmp"))
    assert len(cut_short) == 1
    for name in ("config.json", "error.txt", "final.json"):     # as a kill of their writers leaves them
        cut_short.append(run_dir / f".{name}.{dead_pid()}@{host}.k1ll3d.tmp")
        cut_short[-1].write_text("{")
    being_written = run_dir / f".status.json.{os.getpid()}@{host}.wr1t1n.tmp"   # a live writer's, renamed soon
    being_written.write_text("{")
    assert execute_run(run, results, counting_train).state == "done"
    assert not [path for path in cut_short if path.exists()] and being_written.exists()



def test_the_slurm_record_and_sweep_summary_writers_remove_what_a_killed_writer_left(tmp_path):
    from types import SimpleNamespace

    from registry.slurm_state import write_submission
    from registry.sweep_summary import summary_path, write_summary

    host = socket.gethostname()
    record, summary = tmp_path / "run" / "slurm.json", summary_path(tmp_path, "study-1")
    left = [path.with_name(f".{path.name}.{dead_pid()}@{host}.k1ll3d.tmp") for path in (record, summary)]
    for path in left:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{")
    job = SimpleNamespace(job_id=7, paths=SimpleNamespace(stdout="out", stderr="err"))
    write_submission(record.parent, job, "settings")
    write_summary(tmp_path, {"study": "study-1"})
    assert record.exists() and summary.exists() and not [path for path in left if path.exists()]


def test_a_full_results_disk_is_one_error_and_the_run_goes_on_once_freed(tmp_path, small_disk):
    small = small_disk("8m", full=True)
    env = {**os.environ, "SIMCLR_RESULTS_DIR": str(small), "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-m", "registry", "run", "loss_variant", "--scale", "smoke", "--only", "nt_xent*"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "No space left on device" in done.stderr and "the disk refused a write: free space there" in \
        done.stderr and "unexpected failure" not in done.stderr, done.stderr
    assert not list(small.glob(f"loss_variant/*/{CLAIM_NAME}"))
    (small / "filler").unlink()
    again = subprocess.run(args, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert again.returncode == 0 and "summary: 1 done" in again.stdout, again.stderr[-3000:]


@pytest.mark.parametrize("command", [("run", "loss_variant"), ("sweep", "temperature", "--normalize", "true")])
def test_a_disk_too_small_for_checkpoints_stops_after_the_first_run(tmp_path, small_disk, command):
    # Room for every run's config and status, not for one checkpoint (~6 MB at smoke): the first run trains and
    # fails at its checkpoint; the others would do the same, so they are not started.
    small = small_disk("2m")
    env = {**os.environ, "SIMCLR_RESULTS_DIR": str(small), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "registry", *command, "--scale", "smoke"], env=env,
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "No space left on device" in done.stderr and "unexpected failure" not in done.stderr, done.stderr
    assert "free space there (or make it writable) and run the same command again" in done.stderr
    trained = [p.parent.name for p in small.glob("*/*/metrics.jsonl")]
    assert len(trained) == 1, trained
    if command[0] == "run":
        assert "summary: 1 failed, 4 skipped" in done.stdout
        assert "the disk refused a write, so 4 run(s) were not started" in done.stderr
    else:
        assert "no more trials were started" in done.stderr


def test_a_store_and_cache_on_an_exfat_drive_run_resume_and_sweep(tmp_path, exfat_disk):
    # exFAT has no hard links (os.link: EPERM), which mark_pending's create-if-absent relied on.
    env = {**os.environ, "SIMCLR_RESULTS_DIR": str(exfat_disk / "results"),
           "SIMCLR_CACHE_DIR": str(exfat_disk / "cache"), "PYTHONPATH": str(REPO)}
    with pytest.raises(OSError):
        os.link(REPO / "README.md", exfat_disk / "link-check")

    def registry(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "registry", *args], env=env, capture_output=True, text=True,
                              cwd=tmp_path, timeout=600)

    run = ("run", "loss_variant", "--scale", "smoke", "--only", "nt_xent*")
    first = registry(*run)
    assert first.returncode == 0 and "summary: 1 done" in first.stdout, first.stderr[-3000:]
    again = registry(*run)
    assert again.returncode == 0 and "summary: 1 skipped" in again.stdout, again.stderr[-3000:]
    status = registry("status", "loss_variant")
    assert status.returncode == 0 and "done" in status.stdout, status.stderr[-3000:]
    assert list((exfat_disk / "cache").glob("*.images.npy"))
    # Nor symlinks, Optuna's default journal lock (the storage many SLURM workers share).
    swept = registry("sweep", "temperature", "--normalize", "true", "--trials", "1", "--storage", "journal",
                     "--scale", "smoke")
    assert swept.returncode == 0 and "done failed retried" in swept.stdout, swept.stderr[-3000:]
    assert len(list((exfat_disk / "results" / "optuna").glob("*.journal"))) == 1


def test_a_results_drive_that_goes_away_mid_run_is_one_error_saying_so(tmp_path, exfat_disk):
    # An unplugged drive, or a FUSE/network mount whose server died (here: exFAT's FUSE daemon killed after the
    # first run): every later write fails with ENOTCONN; that is no bug of ours, and no later run can be recorded.
    env = {**os.environ, "SIMCLR_RESULTS_DIR": str(exfat_disk / "results"), "SIMCLR_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "registry", "run", "loss_variant", "--scale", "smoke"]
    with open(tmp_path / "stderr.txt", "w") as errors:       # progress bars: a pipe read by nobody would fill up
        running = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=errors, text=True)
        try:
            for line in running.stdout:
                if line.startswith("[1/5] done"):
                    subprocess.run(["pkill", "-KILL", "-f", f"mount.exfat-fuse .* {exfat_disk}$"], check=True)
                    break
            out, _ = running.communicate(timeout=600)
        finally:
            running.kill()
    err = (tmp_path / "stderr.txt").read_text()
    assert running.returncode == 1, err[-3000:]
    assert "Transport endpoint is not connected" in err and "the disk failed or stopped answering: check or " \
           "reconnect it (the drive, the network or FUSE mount) and run the same command again" in err, err[-3000:]
    assert "unexpected failure" not in err and "[5/5]" not in out


@pytest.mark.parametrize("content", [
    {"host": socket.gethostname(), "pid": os.getppid()},        # a live process on this host
    {"host": "another-node", "pid": 1},                          # another host: cannot judge, keep it
])
def test_live_or_foreign_claims_are_respected(tmp_path, content):
    write_claim(tmp_path, **content)
    assert not is_stale(read_claim(tmp_path))
    assert try_claim(tmp_path) is None
    assert read_claim(tmp_path)["pid"] == content["pid"]


def test_half_written_claim_counts_as_held_until_it_is_old(tmp_path):
    (tmp_path / CLAIM_NAME).write_text("")
    assert try_claim(tmp_path) is None
    old = time.time() - 3600
    os.utime(tmp_path / CLAIM_NAME, (old, old))
    assert try_claim(tmp_path) is not None


# ---- long-form results -----------------------------------------------------------------------------------
def test_load_results_is_long_form(results):
    store = RunStore(results)
    for i, temperature in enumerate((0.1, 0.5)):
        run = make_run(label=f"t{temperature}", temperature=temperature, seed=i)
        store.write_config(run, CODE)
        store.write_final(run.run_id, {"linear_top1": 50.0 + i, "knn_top1": 40.0, "device": "cpu", "flag": True})
    unfinished = make_run(label="pending", temperature=1.0)
    store.mark_pending(unfinished, CODE)

    frame = load_results(results)
    assert len(frame) == 4                                       # 2 finished runs x 2 numeric metrics
    assert set(frame["metric"]) == {"linear_top1", "knn_top1"}   # text and booleans are not metrics
    assert list(frame.columns[:9]) == ["run_id", "experiment", "scale", "label", "seed", "git_sha", "git_dirty",
                                       "metric", "value"]
    row = frame[(frame.metric == "linear_top1") & (frame["loss.temperature"] == 0.5)].iloc[0]
    assert row.value == 51.0 and row.seed == 1 and row.experiment == "toy" and row.git_sha == "abc123"
    assert row["axis.loss.temperature"] == 0.5 and row.label == "t0.5"
    assert row["augment.ops"] == ("crop", "color")               # lists come back as tuples
    assert frame.groupby("run_id").size().tolist() == [2, 2]


def test_load_results_of_an_empty_store(tmp_path):
    frame = load_results(tmp_path / "nothing")
    assert frame.empty and "metric" in frame.columns
