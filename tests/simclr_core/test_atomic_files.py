"""Files replaced whole (simclr_core/atomic_files.py): the permissions a new file gets, and what a failure leaves."""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading

import pytest

from simclr_core import atomic_files
from simclr_core.atomic_files import atomic_write_bytes, atomic_write_text, create_if_absent, process_umask
from simclr_core.checkpoint import save_checkpoint


@contextlib.contextmanager
def umask(mask: int):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o002, 0o664), (0o022, 0o644), (0o077, 0o600)])
def test_new_and_replaced_files_get_what_open_would_give(tmp_path, mask, expected):
    with umask(mask):
        atomic_write_text(tmp_path / "status.json", "{}")
        atomic_write_text(tmp_path / "status.json", '{"state": "done"}')      # replaced: a new file again
        atomic_write_bytes(tmp_path / "sub" / "blob.bin", lambda f: f.write(b"\x00\x01"))
        save_checkpoint(tmp_path / "run", {"step": 3})
        with open(tmp_path / "plain.txt", "w") as plain:
            plain.write("x")
    assert (tmp_path / "status.json").read_text() == '{"state": "done"}'
    assert (tmp_path / "sub" / "blob.bin").read_bytes() == b"\x00\x01"
    assert mode(tmp_path / "plain.txt") == expected
    for path in (tmp_path / "status.json", tmp_path / "sub" / "blob.bin", tmp_path / "run" / "checkpoint.pt"):
        assert mode(path) == expected, path


def test_the_umask_is_read_without_being_changed():
    with umask(0o027):
        assert process_umask() == 0o027
        assert os.umask(0o027) == 0o027


def test_a_failed_write_keeps_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "final.json"
    atomic_write_text(target, "previous")

    def full_disk(f):
        f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as failure:
        atomic_write_bytes(target, full_disk)
    assert failure.value.errno == errno.ENOSPC
    assert f"could not write {target}: No space left on device" in str(failure.value)
    assert "MiB free on that disk); the previous final.json, if any, is unchanged" in str(failure.value)
    assert target.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final.json"]


@pytest.mark.parametrize("hard_links", [True, False], ids=["hard-links", "no-hard-links"])
def test_of_racers_creating_one_file_exactly_one_wins_and_it_is_whole(tmp_path, monkeypatch, hard_links):
    if not hard_links:      # as exFAT, FAT and some FUSE mounts answer (a real exFAT drive: tests/registry)
        def refuse(*_):
            raise PermissionError(errno.EPERM, "Operation not permitted")
        monkeypatch.setattr(atomic_files.os, "link", refuse)
    target, racers = tmp_path / "status.json", 8
    start, won = threading.Barrier(racers), []

    def race(i: int) -> None:
        start.wait()
        if create_if_absent(target, f"racer {i} " + "x" * 100_000):
            won.append(i)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert target.read_text() == f"racer {won[0]} " + "x" * 100_000
    assert create_if_absent(target, "late") is False and target.read_text().startswith(f"racer {won[0]} ")
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def _dead_pid() -> int:
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_only_temporaries_whose_writer_is_gone_are_removed(tmp_path):
    # status.json has several writers (the run's owner, `show`'s SLURM reconcile, a planner): a kill leaves a
    # temporary; a live writer's, which may be renamed any moment now, must stay.
    import socket
    import time

    from simclr_core.atomic_files import ABANDONED_AFTER_S, remove_abandoned_temps

    host, target = socket.gethostname(), tmp_path / "status.json"
    old = time.time() - ABANDONED_AFTER_S - 60
    killed = tmp_path / f".status.json.{_dead_pid()}@{host}.k1ll3d.tmp"
    live = tmp_path / f".status.json.{os.getpid()}@{host}.wr1t1n.tmp"
    elsewhere = tmp_path / ".status.json.1234@another-host.wr1t1n.tmp"
    elsewhere_old, unnamed_old = tmp_path / ".status.json.1234@another-host.0ld.tmp", tmp_path / ".status.json.0ld.tmp"
    unnamed = tmp_path / ".status.json.n3w.tmp"
    others = tmp_path / f".config.json.{_dead_pid()}@{host}.k1ll3d.tmp"
    for path in (killed, live, elsewhere, elsewhere_old, unnamed_old, unnamed, others):
        path.write_text("{")
    for path in (elsewhere_old, unnamed_old):
        os.utime(path, (old, old))
    removed = remove_abandoned_temps(target)
    assert sorted(removed) == sorted([killed, elsewhere_old, unnamed_old])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (live, elsewhere, unnamed, others))


def test_a_write_killed_before_its_rename_leaves_a_temporary_naming_its_writer(tmp_path):
    import signal
    import socket
    import subprocess
    import sys

    script = (f"import os, signal\nfrom simclr_core import atomic_files\n"
              f"atomic_files.os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
              f"atomic_files.atomic_write_text({str(tmp_path / 'status.json')!r}, '{{}}')\n")
    repo = os.path.dirname(os.path.dirname(atomic_files.__file__))
    process = subprocess.run([sys.executable, "-c", script], cwd=repo)
    assert process.returncode == -signal.SIGKILL
    leftover, = tmp_path.iterdir()
    assert leftover.name.startswith(".status.json.") and f"@{socket.gethostname()}." in leftover.name
    assert atomic_files.remove_abandoned_temps(tmp_path / "status.json") == [leftover]
    assert not list(tmp_path.iterdir())
