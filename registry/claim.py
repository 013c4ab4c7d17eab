"""Atomic claims: at most one process works on a run at a time, across concurrent `run` commands.

A claim is the file `<run_dir>/claim.lock`, created with O_CREAT | O_EXCL (atomic on local disks and on
NFS v3+), holding the owner's host, pid, process start time and a random token. Whoever creates it owns
the run; everyone else skips it.

A claim whose owner died on this host (pid gone, or reused by a process started later) is stale and may be
broken. Breaking happens under a short `filelock` guard and re-reads the file first, so two processes that
both find the same stale claim cannot delete a fresh one: only the guard holder deletes, and only the
exact claim it judged stale. A claim held on another host is not judged by its pid (which means nothing on
this host); a SLURM job's claim records the job (cluster, job id, array job and task ids, restart count) instead:
the process of a later attempt of that same job breaks it, since SLURM runs one attempt of a job at a time (a
requeued job often starts on another node, and an attempt killed outright never released its claim), and the
login node breaks the claim of a job that SLURM says has ended (registry/slurm_state.py).
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


# The fields that name a SLURM job, identical across its attempts (an array task is a job of its own).
_SLURM_JOB_FIELDS = {"slurm_cluster": "SLURM_CLUSTER_NAME", "slurm_job_id": "SLURM_JOB_ID",
                     "slurm_array_job_id": "SLURM_ARRAY_JOB_ID", "slurm_array_task_id": "SLURM_ARRAY_TASK_ID"}


def slurm_attempt() -> dict[str, Any]:
    """The SLURM job this process runs in and its attempt (`slurm_restarts`: SLURM_RESTART_COUNT, absent on the first
    attempt); {} outside SLURM."""
    if not os.environ.get("SLURM_JOB_ID"):
        return {}
    info: dict[str, Any] = {field: os.environ[name] for field, name in _SLURM_JOB_FIELDS.items()
                            if os.environ.get(name)}
    restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
    info["slurm_restarts"] = int(restarts) if restarts.isdigit() else None
    return info


def owner_info() -> dict[str, Any]:
    """Who we are, as recorded in a claim and in status.json."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "process_started": _process_started(os.getpid()),
            **slurm_attempt()}


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


def earlier_attempt(claim: dict[str, Any]) -> bool:
    """True when `claim` was written by an earlier attempt (a lower restart count) of the SLURM job this process runs
    in: that attempt is over, wherever it ran. A claim of the same attempt (another process of this job: a second
    task or node, a local `run`'s pool inside an allocation) or of an unknown or later one is not."""
    mine = slurm_attempt()
    if not mine or not claim.get("slurm_job_id"):
        return False
    if any(str(claim.get(field, "")) != str(mine.get(field, "")) for field in _SLURM_JOB_FIELDS):
        return False
    theirs = claim.get("slurm_restarts")
    return (isinstance(theirs, int) and not isinstance(theirs, bool) and mine["slurm_restarts"] is not None
            and theirs < mine["slurm_restarts"])


def is_stale(claim: dict[str, Any]) -> bool:
    """True when the claim's owner is known to be gone: same host and its pid dead (or reused), or an earlier
    attempt of this process's SLURM job."""
    if earlier_attempt(claim):
        return True
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
    return describe_owner(claim) + (" [stale]" if is_stale(claim) else "")


def describe_owner(claim: dict[str, Any]) -> str:
    """host:pid, and the SLURM job and its restart count where the claim records them."""
    where = f"{claim.get('host', '?')}:{claim.get('pid', '?')}"
    if claim.get("slurm_job_id"):
        restart = f", restart {claim['slurm_restarts']}" if "slurm_restarts" in claim else ""
        where += f" (SLURM job {claim['slurm_job_id']}{restart})"
    return where


@dataclass
class Claim:
    """An owned claim; release() (or leaving the `with` block) deletes it if it is still ours. `took_over`: the claim
    of an earlier attempt of this SLURM job that was broken to take this one (see earlier_attempt), else None."""
    run_dir: Path
    token: str
    took_over: dict[str, Any] | None = None

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
    broken = None
    for _ in range(2):   # a second try after breaking a stale claim
        claim = _create(run_dir)
        if claim is not None:
            if broken is not None and earlier_attempt(broken):
                claim.took_over = broken
            return claim
        held = read_claim(run_dir)
        if held is None:      # released between our attempt and the read: try again
            continue
        if not claim_is_stale(run_dir, held) or not _break_stale(run_dir, held):
            return None
        broken = held
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
