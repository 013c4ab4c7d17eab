"""What SLURM says about the runs' jobs, and the store brought in line with it.

A submitted run has `<run_dir>/slurm.json` (written by the submitting process only: job id, time, log paths);
inside the job, status.json gets the job id too (see registry/slurm_job.py). A job can end without the run
recording why: cancelled while still queued, killed by SIGKILL, out of memory, node failure, time limit without
requeue. `reconcile_run` then records `cancelled` or `failed` from the job's final SLURM state (sacct, else
squeue) and breaks the claim that the dead job left behind, which a login node could never judge stale. A run that
its own attempt recorded cancelled (SIGTERM) while SLURM queues the job again (`scontrol requeue`, a requeued
preemption) is pending again; one whose job SLURM ended TIMEOUT (the SIGTERM was the time limit's, not a user's
scancel) is failed with the time limit as its reason, as a job killed at its time limit is.
"""
from __future__ import annotations

import json
import re
import socket
import subprocess
from pathlib import Path
from typing import Any, Iterable, Mapping

from filelock import FileLock, Timeout

from registry.claim import _GUARD_NAME, CLAIM_NAME, is_stale, read_claim
from registry.store import RunStore, _read_json, now_iso
from simclr_core.atomic_files import atomic_write_text, remove_abandoned_temps

SUBMISSION_NAME = "slurm.json"
# Job states after which nothing more happens to the job. COMPLETED is not reconciled: the job itself recorded
# whatever happened to the run (including "skipped: claimed elsewhere"). PREEMPTED is not final: a preempted job
# is usually requeued (submitit also treats it as unfinished).
CANCELLED_STATES = frozenset({"CANCELLED", "REVOKED", "DEADLINE"})
FAILED_STATES = frozenset({"FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "SPECIAL_EXIT"})
ENDED_STATES = CANCELLED_STATES | FAILED_STATES | {"COMPLETED"}
# A job waiting to start (again): after `scontrol requeue`, a preemption or a node failure that SLURM requeues, the
# attempt that was stopped recorded the run cancelled (SIGTERM), yet the job will run it again by itself.
WAITING_STATES = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED"})
# What to change when a job ends in these states (the message then says whether the run resumes).
_STATE_ADVICE = {
    "OUT_OF_MEMORY": ": it used more memory than the job asked for; raise --slurm-mem-gb or lower batch_size",
    "TIMEOUT": ": it reached its time limit without being requeued (SLURM's SIGUSR2 warning, signal_delay_s before "
               "the limit, did not come or came too late to be handled); raise --slurm-time-min or "
               "--slurm-signal-delay-s",
}
_ARRAY = re.compile(r"^(\d+)_\[([^\]]+)\]$")


# ---- submissions ---------------------------------------------------------------------------------------
def write_submission(run_dir: Path, job: Any, settings_summary: str) -> dict[str, Any]:
    record = {"job_id": str(job.job_id), "submitted": now_iso(), "settings": settings_summary,
              "stdout": str(job.paths.stdout), "stderr": str(job.paths.stderr)}
    remove_abandoned_temps(Path(run_dir) / SUBMISSION_NAME)    # what a submitter killed mid-write left
    atomic_write_text(Path(run_dir) / SUBMISSION_NAME, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def read_submission(run_dir: Path) -> dict[str, Any] | None:
    return _read_json(Path(run_dir) / SUBMISSION_NAME)


# ---- job states --------------------------------------------------------------------------------------------
def _base_id(job_id: str) -> str:
    return str(job_id).partition("_")[0]


def _expand(job_id: str) -> list[str]:
    """'12_[0-2,5%2]' -> ['12_0', '12_1', '12_2', '12_5'] (a pending array prints as one line); else [job_id]."""
    match = _ARRAY.match(job_id)
    if not match:
        return [job_id]
    base, spec = match.group(1), match.group(2).partition("%")[0]
    ids = []
    for part in spec.split(","):
        low, _, high = part.partition("-")
        ids.extend(f"{base}_{i}" for i in range(int(low), int(high or low) + 1))
    return ids


def parse_states(text: str) -> dict[str, str]:
    """'ID|STATE' lines (sacct --parsable2 or squeue -o '%i|%T') -> {job id: first word of the state}."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        job_id, sep, state = line.strip().partition("|")
        if not sep or not job_id or "." in job_id:     # job steps (12.batch, 12.0) are not jobs
            continue
        word = state.split()[0].rstrip("+") if state.strip() else "UNKNOWN"
        for one in _expand(job_id):
            states[one] = word
    return states


def job_states(job_ids: Iterable[str]) -> dict[str, str]:
    """{job id: SLURM state} for the ids SLURM still knows: sacct first; squeue for the ids sacct does not list,
    as where accounting is off, or for a job submitted a moment ago (slurmdbd learns of it later than the
    controller, and such a job must not be taken for one that ended)."""
    ids = sorted({str(j) for j in job_ids if j})
    if not ids:
        return {}
    bases = ",".join(sorted({_base_id(j) for j in ids}))
    states = _query(["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", bases])
    if any(j not in states for j in ids):
        queued = _query(["squeue", "-h", "-t", "all", "-o", "%i|%T"])
        states.update({j: state for j, state in queued.items() if j not in states})
    return {j: states[j] for j in ids if j in states}


def _query(command: list[str]) -> dict[str, str]:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return parse_states(done.stdout) if done.returncode == 0 else {}


# ---- reconciling -----------------------------------------------------------------------------------------
def reconcile_run(store: RunStore, run_id: str, states: Mapping[str, str]) -> str | None:
    """If the run's latest job ended without the run recording it, record cancelled/failed now.

    Returns a note for `show` ("SLURM job 12_3 RUNNING"), or None for a run never submitted.
    """
    run_dir = store.run_dir(run_id)
    submission = read_submission(run_dir)
    if submission is None:
        return None
    job_id = submission["job_id"]
    state = states.get(job_id, "UNKNOWN")
    note = f"SLURM job {job_id} {state}"
    if store.is_done(run_id):
        return note
    if state == "COMPLETED":        # the job ended well; the run it held did not (it failed or was stopped inside)
        return f"SLURM job {job_id} COMPLETED, without finishing the run"
    status = store.status(run_id) or {}
    if state in WAITING_STATES:
        _requeued(store, run_id, job_id, status)
        return note
    if state not in CANCELLED_STATES | FAILED_STATES:
        return note
    if status.get("state") == "running":
        if status.get("slurm_job_id") != job_id:
            return note                        # another owner (a local run, a later job) is running it
        claim = read_claim(run_dir)
        if claim and str(claim.get("slurm_job_id")) != str(status.get("slurm_raw_job_id")):
            return note                        # claimed since by someone else
        if claim and claim.get("host") == socket.gethostname() and not is_stale(claim):
            return note                        # its process still lives here (unwinding): it records its end
        if claim and not _break_claim(run_dir, claim):
            return note
    elif status.get("state") == "cancelled" and state == "TIMEOUT" and status.get("slurm_job_id") == job_id:
        pass                                   # the SIGTERM it recorded as a cancellation was the time limit's
    elif status.get("state", "pending") != "pending":
        return note                            # the job recorded its end itself (cancelled, failed)
    ended = "cancelled" if state in CANCELLED_STATES else "failed"
    message = f"SLURM job {job_id} ended {state} before the run finished" + _STATE_ADVICE.get(state, "")
    if state in _STATE_ADVICE:
        message += ("; running it again resumes it from its checkpoint" if store.has_checkpoint(run_id)
                    else "; running it again trains it from the start (it had written no checkpoint)")
    if ended == "failed":
        store.write_error(run_id, message + "\n" + _log_tail(submission))
    store.write_status(run_id, ended, finished=now_iso(), error=message)
    return note


def _requeued(store: RunStore, run_id: str, job_id: str, status: Mapping[str, Any]) -> None:
    """The run's job is queued again after an attempt of its own recorded the run cancelled, or recorded it running and
    was killed outright (SIGKILL at KillWait, a node failure: no attempt runs while SLURM queues the job): pending, as
    it is. Not once a new attempt has claimed the run (it records running itself); a killed attempt's own claim is
    left for the next attempt, which takes it over (registry/claim.py)."""
    if status.get("slurm_job_id") != job_id or status.get("state") not in ("cancelled", "running"):
        return
    claim = read_claim(store.run_dir(run_id))
    if claim is not None and not (status.get("state") == "running" and _same_owner(claim, status)):
        return
    store.write_status(run_id, "pending", requeued=now_iso(), error=None, finished=None)


def _same_owner(claim: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Whether the claim is the one of the attempt that recorded `status` running (same host, pid and restart)."""
    return all(claim.get(key) == status.get(key) for key in ("host", "pid", "slurm_restarts")) and "pid" in claim


def reconcile(store: RunStore, run_ids: Iterable[str]) -> dict[str, str]:
    """reconcile_run for many runs with one sacct call; {run id: note} for the submitted ones (for `show`)."""
    run_ids = list(run_ids)
    submissions = {r: read_submission(store.run_dir(r)) for r in run_ids}
    states = job_states(s["job_id"] for s in submissions.values() if s)
    notes = {r: reconcile_run(store, r, states) for r in run_ids if submissions[r]}
    return {r: n for r, n in notes.items() if n}


def _break_claim(run_dir: Path, seen: dict[str, Any]) -> bool:
    """Delete the claim a dead job left, if it is still exactly that claim (same guard as registry/claim.py)."""
    try:
        with FileLock(str(Path(run_dir) / _GUARD_NAME), timeout=10):
            current = read_claim(run_dir)
            if current is not None and current.get("token") == seen.get("token"):
                (Path(run_dir) / CLAIM_NAME).unlink(missing_ok=True)
            return read_claim(run_dir) is None
    except Timeout:
        return False


def _log_tail(submission: Mapping[str, Any], lines: int = 30) -> str:
    for key in ("stderr", "stdout"):
        try:
            text = Path(submission.get(key, "")).read_bytes().decode(errors="replace")   # keeps each "\r"
        except OSError:
            continue
        shown = [line for line in map(_as_displayed, text.split("\n")) if line.strip()]
        if shown:
            return f"last lines of {submission[key]}:\n" + "\n".join(shown[-lines:]) + "\n"
    return "(no job log)\n"


def _as_displayed(line: str) -> str:
    """A log line as a terminal leaves it: a progress bar redraws itself after carriage returns, so only the text
    after the last one is left (else each redraw would count as a line of the tail)."""
    return line.rstrip("\r").rpartition("\r")[2]
