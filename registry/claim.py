"""Atomic claims: at most one process works on a run at a time, across concurrent `run` commands.

A claim is the file `<run_dir>/claim.lock`, created with O_CREAT | O_EXCL (atomic on local disks and on
NFS v3+), holding the owner's host, pid, process start time and a random token. Whoever creates it owns
the run; everyone else skips it.

A claim whose owner died on this host (pid gone, or reused by a process started later) is stale and may be
broken. Breaking happens under a short `filelock` guard and re-reads the file first, so two processes that
both find the same stale claim cannot delete a fresh one: only the guard holder deletes, and only the
exact claim it judged stale. A claim held on another host is never judged stale here (its pid means
nothing on this host); the SLURM executor checks its job id instead (`slurm_job_id` is recorded).
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from filelock import FileLock, Timeout

CLAIM_NAME = "claim.lock"
_GUARD_NAME = ".claim.guard"
_GUARD_TIMEOUT_S = 10.0
# A claim file still empty this long after it was created belongs to an owner that died while writing it.
_EMPTY_CLAIM_GRACE_S = 60.0


def _process_started(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def owner_info() -> dict[str, Any]:
    """Who we are, as recorded in a claim and in status.json."""
    info: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(),
                            "process_started": _process_started(os.getpid())}
    if os.environ.get("SLURM_JOB_ID"):
        info["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    return info


def read_claim(run_dir: Path) -> dict[str, Any] | None:
    """The claim's content, or None when the run is unclaimed (a half-written claim reads as {})."""
    try:
        text = (Path(run_dir) / CLAIM_NAME).read_text()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {}


def is_stale(claim: dict[str, Any]) -> bool:
    """True when the claim's owner is known to be gone: same host and its pid dead (or reused)."""
    if claim.get("host") != socket.gethostname() or "pid" not in claim:
        return False
    started = _process_started(int(claim["pid"]))
    if started is None:
        return True
    recorded = claim.get("process_started")
    # A pid reused by a process started after the claim was written is not the owner.
    return recorded is not None and abs(started - recorded) > 1.0


def describe_claim(claim: dict[str, Any] | None) -> str:
    if claim is None:
        return "unclaimed"
    if not claim:
        return (f"an empty {CLAIM_NAME}: its owner is writing it, or was killed while writing it (then the next `run` "
                f"breaks it once it is {_EMPTY_CLAIM_GRACE_S:.0f} s old)")
    where = f"{claim.get('host', '?')}:{claim.get('pid', '?')}"
    if claim.get("slurm_job_id"):
        where += f" (SLURM job {claim['slurm_job_id']})"
    return where + (" [stale]" if is_stale(claim) else "")


@dataclass
class Claim:
    """An owned claim; release() (or leaving the `with` block) deletes it if it is still ours."""
    run_dir: Path
    token: str

    def release(self) -> None:
        current = read_claim(self.run_dir)
        if current is not None and current.get("token") == self.token:
            (self.run_dir / CLAIM_NAME).unlink(missing_ok=True)

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def try_claim(run_dir: Path) -> Claim | None:
    """Claim `run_dir` for this process; None when a live owner holds it. Breaks stale claims."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for _ in range(2):   # a second try after breaking a stale claim
        claim = _create(run_dir)
        if claim is not None:
            return claim
        held = read_claim(run_dir)
        if held is None:      # released between our attempt and the read: try again
            continue
        if not claim_is_stale(run_dir, held) or not _break_stale(run_dir, held):
            return None
    return None


def break_if_stale(run_dir: Path) -> bool:
    """Delete the claim of `run_dir` if its owner is gone; True if the run is now unclaimed."""
    held = read_claim(Path(run_dir))
    if held is None:
        return True
    return claim_is_stale(Path(run_dir), held) and _break_stale(Path(run_dir), held)


def _create(run_dir: Path) -> Claim | None:
    token = secrets.token_hex(8)
    content = json.dumps({**owner_info(), "token": token, "claimed_at": time.time()})
    path = run_dir / CLAIM_NAME
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:      # a full disk: an empty claim would hold the run for a while; leave none
        path.unlink(missing_ok=True)
        raise OSError(exc.errno, f"could not write {path}: {exc.strerror or exc}") from exc
    return Claim(run_dir, token)


def claim_is_stale(run_dir: Path, claim: dict[str, Any]) -> bool:
    """Whether `claim` (read from run_dir) is one to break: its owner is gone (is_stale), or the claim stayed empty
    past the grace its owner had to write it."""
    if claim:
        return is_stale(claim)
    try:
        return time.time() - (run_dir / CLAIM_NAME).stat().st_mtime > _EMPTY_CLAIM_GRACE_S
    except FileNotFoundError:
        return False


def _break_stale(run_dir: Path, seen: dict[str, Any]) -> bool:
    """Delete the claim if it is still exactly the stale one we saw; True if deleted or already gone."""
    try:
        with FileLock(str(run_dir / _GUARD_NAME), timeout=_GUARD_TIMEOUT_S):
            current = read_claim(run_dir)
            if current is None:
                return True
            if current.get("token") != seen.get("token") or not claim_is_stale(run_dir, current):
                return False
            (run_dir / CLAIM_NAME).unlink()
            return True
    except Timeout:
        return False
