"""SLURM dispatch through submitit: every run of a grid is one element of a job array.

    executor = SlurmExecutor(load_settings(), wait=False)   # registry/slurm_settings.py: file + flags
    executor.dispatch(runs, results_dir)   # -> Outcome "submitted" per run (wait=True: done|failed|cancelled)

    python -m registry run NAME --scale S --slurm [--slurm-partition P --slurm-gpus-per-node 8 ...] [--slurm-wait]

Each job runs registry/slurm_job.py's `SlurmRunTask` with the submitting process's Python (sys.executable), one
process per GPU (or --slurm-tasks-per-node K on CPUs): claims, statuses, skipping and resuming behave as in a
local run. Jobs write their logs under <results>/.submitit/<job id>/; each run records its job in slurm.json
(here, at submission) and status.json (in the job). Runs already done, or queued/running in a live job, are not
submitted again. A job that ends without the run recording it (cancelled while queued, killed) is reconciled
from sacct/squeue: see registry/slurm_state.py. Runs that differ only in evaluation pretrain once: the others'
jobs wait for the job that trains it (share_pretraining).
"""
from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from filelock import FileLock, Timeout

from registry.claim import describe_claim, is_stale, read_claim
from registry.declare import Run
from registry.launch import Executor, Outcome, TrainFn, preflight_runs, resolve_train_fn
from registry.pretraining import finished_pretrainings, pretraining_key, trains_own_pretraining
from registry.provenance import code_version
from registry.slurm_settings import SlurmSettings, load_settings
from registry.slurm_state import (ENDED_STATES, job_states, read_submission, reconcile, reconcile_run,
                                  write_submission)
from registry.store import RESULTS_DIR_ENV, RunStore, now_iso
from simclr_core.atomic_files import symlinks_work
from simclr_core.validation import ConfigError

SLURM_COMMANDS = ("sbatch", "srun", "squeue", "scancel", "scontrol", "sinfo")
SUBMITIT_DIR = ".submitit"
SUBMIT_LOCK_NAME = "submit.lock"
_ACTIVE = ("PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING",
           "RESIZING", "SUSPENDED", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD")

__all__ = ["SlurmExecutor", "require_slurm", "partition_nodes", "check_batch_sizes", "share_pretraining", "reconcile",
           "SlurmSettings", "load_settings"]


def require_slurm() -> None:
    """Refuse plainly, before anything is recorded, where there is no reachable SLURM."""
    missing = [c for c in SLURM_COMMANDS if shutil.which(c) is None]
    if missing:
        raise ConfigError(f"--slurm: SLURM's commands are not on this machine ({', '.join(missing)} not found on "
                          "PATH); install the SLURM client (Debian/Ubuntu: slurm-client) or load your cluster's "
                          "module, or run locally without --slurm")
    try:
        probe = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise ConfigError("--slurm: sinfo did not answer within 60 s; is the SLURM controller up?") from None
    if probe.returncode != 0:
        detail = (probe.stderr or probe.stdout).strip().splitlines()
        raise ConfigError(f"--slurm: the SLURM controller does not answer (sinfo: {detail[-1] if detail else probe.returncode}); "
                          f"check SLURM_CONF={os.environ.get('SLURM_CONF', '(unset)')}")


def partition_nodes(partition: str | None) -> tuple[str, int] | None:
    """(partition, its node count) from sinfo -- the default partition when `partition` is None -- or None where
    SLURM cannot say (sinfo fails or does not list it: sbatch then gives its own error)."""
    try:
        probe = subprocess.run(["sinfo", "-h", "-o", "%P %D"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if probe.returncode != 0:
        return None
    counts: dict[str, int] = {}
    default = None
    for line in probe.stdout.splitlines():
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            continue
        name = parts[0]
        if name.endswith("*"):
            name = default = name.rstrip("*")
        counts[name] = counts.get(name, 0) + int(parts[1])
    chosen = partition if partition is not None else default
    if chosen is None or chosen not in counts:
        return None
    return chosen, counts[chosen]


def kill_wait_s() -> int | None:
    """SLURM's KillWait: the seconds between the SIGTERM that ends a job (scancel, the time limit, a preemption) and
    its SIGKILL, from `scontrol show config`; None where SLURM cannot say."""
    try:
        shown = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"^KillWait\s*=\s*(\d+)", shown.stdout, re.MULTILINE) if shown.returncode == 0 else None
    return int(found.group(1)) if found else None


def sigterm_checkpoint_within_s() -> float:
    """How long a job's training may take, after a SIGTERM, to save a checkpoint at its next logging step before it
    stops at once (registry/slurm_job.py): a share of KillWait, the rest being for recording the run and leaving
    before the SIGKILL; 0 (stop at once, nothing saved) where KillWait is unknown."""
    from registry.slurm_job import SIGTERM_SHARE_OF_KILL_WAIT

    return (kill_wait_s() or 0) * SIGTERM_SHARE_OF_KILL_WAIT


def check_nodes(settings: SlurmSettings) -> None:
    """--slurm-nodes larger than the partition: a ConfigError before anything is submitted (skipped where SLURM
    cannot say how many nodes the partition has)."""
    found = partition_nodes(settings.partition)
    if found is None:
        return
    name, count = found
    if settings.nodes > count:
        raise ConfigError(f"--slurm-nodes {settings.nodes} (from {settings.source}) is more than partition "
                          f"{name!r} has: choose 1..{count} node(s)"
                          + ("" if settings.partition else " (the default partition; --slurm-partition picks another)"))


def check_batch_sizes(runs: Sequence[Run], settings: SlurmSettings) -> None:
    """Every run's batch must split evenly over the job's nodes x processes per node: one ConfigError naming the
    runs, the world size and the choices that would fit, before anything is submitted."""
    world = settings.nodes * settings.processes_per_node
    if world <= 1:
        return
    bad = [run for run in runs if run.config.batch_size % world]
    if not bad:
        return
    batches = sorted({run.config.batch_size for run in bad})
    nodes, per_node = settings.nodes, settings.processes_per_node
    # No k above the smallest batch per node can fit (a huge --slurm-tasks-per-node must not make this loop long).
    largest = min(max(8, 2 * per_node), min(batches) // nodes)
    fits = [k for k in range(1, largest + 1) if all(b % (nodes * k) == 0 for b in batches)]
    names = ", ".join(run.run_id for run in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    raise ConfigError(
        f"batch_size {', '.join(map(str, batches))} is not divisible by the world size {world} ({nodes} node(s) x "
        f"{per_node} process(es) per node, from {settings.source}) for {names}; valid: with {nodes} node(s), "
        + (f"--slurm-tasks-per-node {' | '.join(map(str, fits))}" if fits else "no tasks per node fits")
        + f", or a batch_size that is a multiple of {world}")


def check_cpu_job_memory(runs: Sequence[Run], settings: SlurmSettings) -> None:
    """A job without GPUs trains in its node's memory, which SLURM caps at mem_gb (an out-of-memory kill past
    it): one ConfigError naming the run, its estimated peak per node and the setting, before submission. Jobs
    with GPUs, and jobs without mem_gb (the cluster's default, unknown here), are not judged."""
    if settings.gpus_per_node or settings.mem_gb is None or not runs:
        return
    from registry.host_memory import GIB
    from registry.run_memory import estimate_run_memory

    per_node = settings.processes_per_node
    world = settings.nodes * per_node

    def per_node_bytes(run: Run) -> int:
        share = replace(run.config, batch_size=max(1, run.config.batch_size // world))
        return per_node * estimate_run_memory(share, device="cpu").total

    need, run = max(((per_node_bytes(run), run) for run in runs), key=lambda pair: pair[0])
    if need <= settings.mem_gb * GIB:
        return
    raise ConfigError(
        f"{run.run_id} needs about {need / GIB:.1f} GiB of memory per node ({per_node} process(es) per node, "
        f"each with {run.config.batch_size // world} of its batch_size {run.config.batch_size}; "
        f"registry/run_memory.py's estimate on a CPU), more than the job's mem_gb={settings.mem_gb:g} (from "
        f"{settings.source}), past which SLURM kills it: raise --slurm-mem-gb to at least "
        f"{math.ceil(need / GIB)}, or lower batch_size. No job was submitted.")


def share_pretraining(runs: Sequence[Run], store: RunStore,
                      training: Mapping[str, str]) -> tuple[list[Run], dict[str, list[Run]]]:
    """Which runs to submit now, and which wait for another run's pretraining: {that run's id: its followers}.

    Runs that differ only in evaluation (registry/pretraining.py) pretrain once: the first of them trains and
    the others' jobs start after its job ends (an `afterany` dependency), to evaluate its checkpoint. A run
    with a checkpoint of its own resumes it and leads its group; a run whose pretraining is already finished in
    the store, that no other run shares, or that trains its own (--redo), is submitted now. `training`:
    pretraining key -> the id of a run that a live job is training already (its followers wait for that job).
    """
    finished = finished_pretrainings(store)
    leaders = dict(training)
    now: list[Run] = []
    waiting: dict[str, list[Run]] = {}
    own_checkpoint_first = sorted(runs, key=lambda run: not store.has_checkpoint(run.run_id))
    for run in own_checkpoint_first:
        key = pretraining_key(run.config)
        if key in finished or store.has_checkpoint(run.run_id) or trains_own_pretraining(store, run.run_id):
            now.append(run)
            leaders.setdefault(key, run.run_id)
        elif key in leaders:
            waiting.setdefault(leaders[key], []).append(run)
        else:
            now.append(run)
            leaders[key] = run.run_id
    order = {run.run_id: i for i, run in enumerate(runs)}
    return sorted(now, key=lambda run: order[run.run_id]), waiting


@contextmanager
def submitting(results_root: Path) -> Iterator[None]:
    """Hold the results folder's submission lock (<results>/.submitit/submit.lock) while runs are judged and
    submitted; a second submitter says once that it waits, then judges the runs against the first one's jobs."""
    lock = FileLock(str(Path(results_root) / SUBMITIT_DIR / SUBMIT_LOCK_NAME))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        announce_wait(lock.lock_file)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def announce_wait(lock_file: str) -> None:
    print(f"waiting for another submission to this results folder to finish (it holds {lock_file})",
          file=sys.stderr, flush=True)


class SlurmExecutor(Executor):
    """Submit runs as a submitit job array; optionally wait for them and report each run's outcome."""

    name = "slurm"

    def __init__(self, settings: SlurmSettings | None = None, train_fn: TrainFn | str | None = None,
                 wait: bool = False, on_outcome: Callable[[Outcome], None] | None = None, poll_s: float = 5.0):
        require_slurm()                   # first: on a machine without SLURM no setting can help
        self.settings = settings if settings is not None else load_settings()
        self.settings.require_time_limit()
        check_nodes(self.settings)        # --slurm-nodes larger than the partition: before anything is submitted
        self.train_fn = train_fn
        self.wait = wait
        self.on_outcome = on_outcome or (lambda outcome: None)
        self.poll_s = poll_s
        self.jobs: dict[str, Any] = {}        # run id -> submitit Job, for the runs submitted by this executor
        self.waits_for: dict[str, str] = {}   # run id -> the run whose pretraining its job waits for

    # ---- dispatch --------------------------------------------------------------------------------------
    def check(self, runs: Sequence[Run]) -> None:
        """What can be known wrong before submission, for these runs (ConfigError): the batch over the world,
        a CPU job's memory, and the training function's preflight where the data is on this machine too."""
        check_batch_sizes(runs, self.settings)
        check_cpu_job_memory(runs, self.settings)
        preflight_runs(runs, resolve_train_fn(self.train_fn), data_elsewhere=True,
                       nothing_started="No job was submitted.")

    def check_results(self, results_dir: str | os.PathLike) -> None:
        """submitit keeps each job's files in <results>/.submitit and links them with symbolic links."""
        folder = Path(results_dir).resolve() / SUBMITIT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        if not symlinks_work(folder):
            raise ConfigError(f"--slurm keeps its job files in {folder}, and submitit links them with symbolic "
                              f"links, which that file system cannot make (exFAT, FAT, some FUSE or SMB mounts); "
                              f"put the results folder (--results-dir, ${RESULTS_DIR_ENV}) on one that can, such "
                              "as the cluster's home or scratch space. No job was submitted.")

    def dispatch(self, runs: Sequence[Run], results_dir: str | os.PathLike) -> list[Outcome]:
        self.check(runs)
        self.check_results(results_dir)
        store = RunStore(results_dir)
        outcomes: dict[str, Outcome] = {}
        todo = []
        # One submitter at a time per results folder: a second `run --slurm` started meanwhile sees these jobs.
        with submitting(store.root.resolve()):
            states = job_states(s["job_id"] for r in runs if (s := read_submission(store.run_dir(r.run_id))))
            live: dict[str, str] = {}          # run id -> job id, for runs a live job holds already
            for run in runs:
                reconcile_run(store, run.run_id, states)     # a job that died unrecorded: cancelled/failed first
                reason = self._not_now(store, run, states)
                if reason:
                    outcomes[run.run_id] = Outcome(run.run_id, "skipped", reason)
                    self.on_outcome(outcomes[run.run_id])
                    submission = read_submission(store.run_dir(run.run_id))
                    if submission and states.get(submission["job_id"]) in _ACTIVE:
                        live[run.run_id] = str(submission["job_id"])
                else:
                    todo.append(run)
            if todo:
                training = {pretraining_key(run.config): run.run_id for run in runs if run.run_id in live}
                jobs = self._submit(todo, store, training, live)
        if todo:
            if self.wait:
                outcomes.update(self._wait(store, jobs))
            else:
                for run in todo:
                    outcomes[run.run_id] = Outcome(run.run_id, "submitted", self._describe(run.run_id, live))
                    self.on_outcome(outcomes[run.run_id])
        return [outcomes[run.run_id] for run in runs]

    def _describe(self, run_id: str, live: Mapping[str, str]) -> str:
        detail = f"SLURM job {self.jobs[run_id].job_id}"
        leader = self.waits_for.get(run_id)
        if leader is not None:
            leader_job = self.jobs[leader].job_id if leader in self.jobs else live[leader]
            detail += f", after job {leader_job} (it evaluates the pretraining of {leader})"
        return detail

    def _not_now(self, store: RunStore, run: Run, states: dict[str, str]) -> str:
        if store.is_done(run.run_id):
            return "done already (final.json)"
        submission = read_submission(store.run_dir(run.run_id))
        if submission and states.get(submission["job_id"]) in _ACTIVE:
            return f"in SLURM job {submission['job_id']} ({states[submission['job_id']]})"
        claim = read_claim(store.run_dir(run.run_id))
        if claim is not None and not is_stale(claim):
            return f"claimed by {describe_claim(claim)}"
        return ""

    def _submit(self, runs: list[Run], store: RunStore, training: Mapping[str, str],
                live: Mapping[str, str]) -> dict[str, Any]:
        """One job array for the runs that can start now, then one per shared pretraining for the runs that
        evaluate it, each starting after the job that trains it ends (share_pretraining)."""
        import submitit

        folder = store.root.resolve() / SUBMITIT_DIR / "%j"
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm",
                                         slurm_max_num_timeout=self.settings.max_requeues)
        experiments = sorted({run.experiment for run in runs})
        parameters = self.settings.submitit_parameters()
        executor.update_parameters(name="simclr_" + ("+".join(experiments) if len(experiments) < 3 else "runs"),
                                   **parameters)
        code = code_version()
        for run in runs:   # queued again: pending (before sbatch, so that no attempt of the job can be overwritten)
            if not store.mark_pending(run, code) and store.state(run.run_id) in ("failed", "cancelled"):
                store.write_status(run.run_id, "pending", error=None, finished=None)
        now, waiting = share_pretraining(runs, store, training)
        submitted = self._sbatch(executor, now, store, code)
        for leader, followers in waiting.items():
            leader_job = submitted[leader].job_id if leader in submitted else live[leader]
            extra = dict(parameters.get("slurm_additional_parameters", {}))
            extra["dependency"] = ",".join(d for d in (extra.get("dependency"), f"afterany:{leader_job}") if d)
            executor.update_parameters(slurm_additional_parameters=extra)
            submitted.update(self._sbatch(executor, followers, store, code))
            self.waits_for.update({run.run_id: leader for run in followers})
        return {run.run_id: submitted[run.run_id] for run in runs}

    def _sbatch(self, executor: Any, runs: list[Run], store: RunStore, code: dict[str, Any]) -> dict[str, Any]:
        from submitit.core.utils import FailedJobError

        from registry.slurm_job import CHECKPOINT_WITHIN_S, SlurmRunTask

        if not runs:          # e.g. every run waits for a pretraining that a live job is training
            return {}
        root = store.root.resolve()
        # Half the time-limit warning for the checkpoint, half to stop at once if it is late.
        within = self.settings.signal_delay_s / 2 if self.settings.signal_delay_s else CHECKPOINT_WITHIN_S
        sigterm_within = sigterm_checkpoint_within_s()
        try:
            with executor.batch():
                jobs = [executor.submit(SlurmRunTask(run, root, self.train_fn, code, within, sigterm_within))
                        for run in runs]
        except FailedJobError as exc:         # sbatch refused: bad partition, account, limits...
            raise ConfigError(f"sbatch refused the job ({self.settings.summary()}; settings from "
                              f"{self.settings.source}):\n{str(exc).strip()}") from None
        submitted = {}
        for run, job in zip(runs, jobs):
            write_submission(store.run_dir(run.run_id), job, self.settings.summary())
            submitted[run.run_id] = self.jobs[run.run_id] = job
        return submitted

    # ---- waiting -----------------------------------------------------------------------------------------
    def _wait(self, store: RunStore, jobs: dict[str, Any]) -> dict[str, Outcome]:
        """Poll until every job has ended; the outcome of each run as soon as its job ends."""
        outcomes: dict[str, Outcome] = {}
        pending = dict(jobs)
        try:
            while pending:
                states = job_states(job.job_id for job in pending.values())
                for run_id, job in list(pending.items()):
                    outcome = _ended_outcome(store, run_id, job, states.get(str(job.job_id), "UNKNOWN"))
                    if outcome is not None:
                        outcomes[run_id] = outcome
                        del pending[run_id]
                        self.on_outcome(outcome)
                if pending:
                    time.sleep(self.poll_s)
        except KeyboardInterrupt:
            print(f"stopped waiting; {len(pending)} SLURM job(s) keep running: "
                  f"{' '.join(str(job.job_id) for job in pending.values())} (scancel them to stop them)",
                  file=sys.stderr)
            for run_id, job in pending.items():
                outcomes[run_id] = Outcome(run_id, "submitted", f"SLURM job {job.job_id}")
        return outcomes


def _task_jobs(job: Any) -> list[Any]:
    return [job.task(i) for i in range(job.num_tasks)] if job.num_tasks > 1 else [job]


def _ended_outcome(store: RunStore, run_id: str, job: Any, state: str) -> Outcome | None:
    """The run's outcome once its job has ended (every task left a result, or SLURM says it ended), else None."""
    from submitit.core.utils import pickle_load

    tasks = _task_jobs(job)
    if not all(task.paths.result_pickle.exists() for task in tasks) and state not in ENDED_STATES:
        return None
    lead = tasks[0].paths.result_pickle
    if lead.exists():
        kind, value = pickle_load(lead)
        if kind == "success" and isinstance(value, Outcome):
            return value
        if kind == "error" and (store.status(run_id) or {}).get("state") == "pending":
            # The task failed before it could record anything (e.g. it could not import the project).
            message = f"SLURM job {job.job_id} failed before the run started"
            store.write_error(run_id, f"{message}:\n{value}")
            store.write_status(run_id, "failed", finished=now_iso(), error=message)
    reconcile_run(store, run_id, {str(job.job_id): state})
    ended = store.state(run_id)
    if ended == "pending":                    # nothing recorded a reason, yet nothing will run it now
        return Outcome(run_id, "failed", f"SLURM job {job.job_id} ended {state}; the run is still pending")
    return Outcome(run_id, ended, (store.status(run_id) or {}).get("error") or f"SLURM job {job.job_id} {state}")
