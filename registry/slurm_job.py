"""Inside a SLURM job: one run on every task of the job, requeued from its checkpoint when time runs out.

submitit unpickles a `SlurmRunTask` on each task (srun) of the job and calls it.

  one task      execute_run(run) exactly as a local run: claim, status running, train, done | failed | cancelled.
  N tasks       (nodes x tasks per node) torch.distributed is set up from SLURM's variables (RANK, WORLD_SIZE,
                LOCAL_RANK, MASTER_ADDR, MASTER_PORT; NCCL on GPUs, gloo on CPUs). Rank 0 goes through execute_run
                and tells the other ranks whether to train (a run it skips must not leave them waiting);
                Accelerate finds the process group, so negatives and BatchNorm statistics span all N processes.

Signals, as SLURM and submitit send them:

  SIGUSR2  SLURM's warning `signal_delay_s` before the time limit (sbatch --signal=USR2@...), or submitit's
           preemption: training stops, the run goes back to pending, then submitit checkpoints the task
           (`checkpoint()` returns a fresh task for the same run) and requeues the job. The next attempt resumes
           from the run's checkpoint.pt, as any re-run does.
           In train()'s training loop, training first saves a checkpoint at its next logging step (every rank at
           the same step: simclr_core/stop_request.py), so the next attempt loses no step; in a fine-tuning of the
           final evaluation, it saves the fine-tuning's progress at its next epoch end (or, in its last epoch, its
           metrics as it ends: simclr_core/finetune_progress.py). Training stops at once, as outside those (start-up,
           the other protocols), on a second SIGUSR2, or when the save has not come within `checkpoint_within_s`
           (half the warning: time is left to stop and requeue).
  SIGTERM  scancel, a preemption that SLURM requeues by itself, or the time limit reached without the warning:
           training stops and the run is recorded cancelled (launch.RunCancelled; reconciling reads a job that
           SLURM ended TIMEOUT as such: registry/slurm_state.py). SLURM kills the job KillWait seconds later (its
           slurm.conf, 30 s by default; a preemption's GraceTime comes first, then a second SIGTERM), so in train()'s
           training loop training first saves a checkpoint at its next logging step if that comes within
           `sigterm_checkpoint_within_s` (a third of KillWait, read at submission: time is left to record the run
           and leave before the SIGKILL; 0 where KillWait is unknown: it stops at once), as for SIGUSR2. SIGTERMs
           that follow do not stop it sooner: srun relays SLURM's SIGTERM to its tasks, so one often comes twice,
           and the SIGKILL comes no sooner than KillWait after the first. A SIGUSR2 that follows within
           PREEMPT_GRACE_S (submitit's preemption sends TERM, then USR2) turns it into a requeue as above.

Only rank 0 stops on a signal. The other ranks keep training until rank 0 leaves the collectives, so a broken
connection rank 0 caused on purpose is never recorded as the run's failure.
"""
from __future__ import annotations

import ipaddress
import os
import signal
import socket
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import submitit
from submitit.core.utils import UncompletedJobError
from submitit.helpers import Checkpointable, DelayedSubmission

from registry.declare import Run
from registry.launch import Outcome, RunCancelled, TrainFn, execute_run, raise_interrupt, resolve_train_fn
from registry.store import CHECKPOINT_NAME, RunStore, now_iso
from simclr_core import stop_request
from simclr_core.warning_format import print_warnings_on_one_line

# Seconds rank 0 waits after SIGTERM for the SIGUSR2 that would make it a preemption (submitit sends both at once).
PREEMPT_GRACE_S = 3.0
# Seconds after SIGUSR2 within which training must have saved its checkpoint, else it stops at once, where the job
# gave no `checkpoint_within_s` (half the default 120 s warning).
CHECKPOINT_WITHIN_S = 60.0
# The share of SLURM's KillWait (SIGTERM to SIGKILL) that training may spend reaching its next logging step and saving
# a checkpoint there after a SIGTERM; the rest is for recording the run and leaving.
SIGTERM_SHARE_OF_KILL_WAIT = 1 / 3
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_DECISION_KEY = "simclr_harness/decision"
_GO, _SKIP = "go", "skip"


class RunPreempted(RunCancelled):
    """SIGUSR2: the job's time limit is near, or it is being preempted; the run is requeued, not cancelled."""


class _Signals:
    """SIGTERM / SIGUSR2 handlers. They raise in the training frame of rank 0 only while training (`armed`);
    otherwise they only remember the signal, so that writing the store is never interrupted halfway. The first
    SIGUSR2 while train()'s loop runs asks it for a checkpoint first (every rank asks: any one seeing it is enough);
    rank 0 stops at once on a second one, which it sends itself after `checkpoint_within_s`. The first SIGTERM does
    the same within `sigterm_checkpoint_within_s`, where that is above 0, and only the one rank 0 sends itself then
    stops it (SLURM's own come twice: from slurmstepd and relayed by srun)."""

    def __init__(self, rank: int, checkpoint_within_s: float = CHECKPOINT_WITHIN_S,
                 sigterm_checkpoint_within_s: float = 0.0):
        self.rank = rank
        self.checkpoint_within_s = checkpoint_within_s
        self.sigterm_checkpoint_within_s = sigterm_checkpoint_within_s
        self.armed = False
        self.term = False
        self.usr2 = False
        self._term_asked_for_checkpoint = False
        self._late = False                # a deadline passed: the signal it sent stops training at once
        self._deadlines: list[threading.Timer] = []

    def install(self) -> Callable | int | None:
        """Take over SIGTERM and SIGUSR2; returns submitit's SIGUSR2 handler (checkpoint + requeue)."""
        submitit_usr2 = signal.getsignal(signal.SIGUSR2)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGUSR2, self._on_usr2)
        return submitit_usr2

    @property
    def seen(self) -> bool:
        return self.term or self.usr2

    def arm(self) -> None:
        if self.rank == 0 and self.seen:      # a signal came while we were still starting
            raise_interrupt(self._exception("before training started"))
        self.armed = True

    def disarm(self) -> None:
        self.armed = False
        for deadline in self._deadlines:
            deadline.cancel()

    def _on_term(self, signum: int, frame: object) -> None:
        first, self.term = not self.term, True
        if first and self.sigterm_checkpoint_within_s > 0 and self._ask_for_checkpoint(
                signal.SIGTERM, self.sigterm_checkpoint_within_s):
            self._term_asked_for_checkpoint = True
            return
        if self._term_asked_for_checkpoint and not self._late:
            return                        # SLURM's SIGTERM again: the checkpoint's deadline still holds
        self._raise_if_armed()

    def _on_usr2(self, signum: int, frame: object) -> None:
        first, self.usr2 = not self.usr2, True
        if first and self._ask_for_checkpoint(signal.SIGUSR2, self.checkpoint_within_s):
            return
        self._raise_if_armed()

    def _ask_for_checkpoint(self, signum: int, within_s: float) -> bool:
        """While train()'s loop runs, ask it for a checkpoint at its next logging step; False otherwise. Rank 0
        sends itself `signum` again after `within_s`, which stops it at once if the checkpoint is late (e.g. a long
        logging period)."""
        if not (self.armed and stop_request.request()):
            return False
        if self.rank == 0:
            deadline = threading.Timer(within_s, self._stop_late, (signum,))
            deadline.daemon = True
            deadline.start()
            self._deadlines.append(deadline)
        return True

    def _stop_late(self, signum: int) -> None:
        self._late = True
        os.kill(os.getpid(), signum)

    def _raise_if_armed(self) -> None:
        if self.armed and self.rank == 0:
            self.armed = False
            raise_interrupt(self._exception("during training"))

    def _exception(self, when: str) -> RunCancelled:
        if self.usr2:
            return RunPreempted(f"SIGUSR2 {when}: time limit near or preempted; requeueing")
        return RunCancelled(f"SIGTERM {when}: job cancelled")

    def wait_for_usr2(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not self.usr2 and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.usr2


class SlurmRunTask(Checkpointable):
    """The callable submitted for one run. Picklable: the run, the results folder, the training function
    ("module:function" or an importable callable) and the submitting checkout's code version."""

    def __init__(self, run: Run, results_dir: str | os.PathLike, train_fn: TrainFn | str | None = None,
                 code: dict[str, Any] | None = None, checkpoint_within_s: float = CHECKPOINT_WITHIN_S,
                 sigterm_checkpoint_within_s: float = 0.0):
        self.run = run
        self.results_dir = str(results_dir)
        self.train_fn = train_fn
        self.code = code
        self.checkpoint_within_s = checkpoint_within_s
        self.sigterm_checkpoint_within_s = sigterm_checkpoint_within_s

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """submitit calls this on SIGUSR2 before requeueing: the same run again (training keeps its own
        checkpoint.pt, so there is no state to carry)."""
        again = SlurmRunTask(self.run, self.results_dir, self.train_fn, self.code, self.checkpoint_within_s,
                             self.sigterm_checkpoint_within_s)
        return DelayedSubmission(again, *args, **kwargs)

    def __call__(self) -> Outcome:
        env = submitit.JobEnvironment()
        _use_allocated_cpus(env)
        print_warnings_on_one_line()
        # getattr: a task pickled by an older checkout (a job queued before an update) lacks the attribute
        signals = _Signals(env.global_rank, getattr(self, "checkpoint_within_s", CHECKPOINT_WITHIN_S),
                           getattr(self, "sigterm_checkpoint_within_s", 0.0))
        submitit_usr2 = signals.install()
        store = _join_process_group(env) if env.num_tasks > 1 else None
        if env.global_rank == 0:
            return self._lead(env, signals, store, submitit_usr2)
        return self._follow(env, signals, store)

    # ---- rank 0 ---------------------------------------------------------------------------------------
    def _lead(self, env, signals: _Signals, store, submitit_usr2) -> Outcome:
        runs = RunStore(self.results_dir)
        started = False

        def train_here(cfg, run_dir: Path) -> dict:
            nonlocal started
            started = True
            if store is not None:
                store.set(_DECISION_KEY, _GO)
            _record_attempt(runs, self.run.run_id, env)
            signals.arm()
            try:
                return resolve_train_fn(self.train_fn)(cfg, run_dir)
            except stop_request.StoppedAtCheckpoint as stopped:
                if signals.term and not signals.usr2:     # submitit's preemption may still follow with SIGUSR2
                    message = f"SIGTERM during {stopped.during}: {stopped.saved}; stopped"
                    print(f"[{self.run.run_id}] {message}", flush=True)
                    raise_interrupt(RunCancelled(message))
                signals.usr2 = True           # asked by SIGUSR2, on this rank or another
                message = f"SIGUSR2 during {stopped.during}: {stopped.saved}; requeueing"
                print(f"[{self.run.run_id}] {message}", flush=True)
                raise_interrupt(RunPreempted(message))
            finally:
                signals.disarm()

        try:
            return execute_run(self.run, self.results_dir, train_here, self.code)
        except RunCancelled:                  # execute_run recorded `cancelled` and released the claim
            if signals.usr2 or signals.wait_for_usr2(PREEMPT_GRACE_S):
                _requeue(runs, self.run.run_id, submitit_usr2)
            raise
        finally:
            if store is not None and not started:
                store.set(_DECISION_KEY, _SKIP)

    # ---- ranks 1..N-1 ---------------------------------------------------------------------------------
    def _follow(self, env, signals: _Signals, store) -> Outcome:
        rank, world = env.global_rank, env.num_tasks
        if store.get(_DECISION_KEY).decode() != _GO:
            return Outcome(self.run.run_id, "skipped", f"rank {rank}: rank 0 did not start the run")
        run_dir = RunStore(self.results_dir).run_dir(self.run.run_id)
        try:
            resolve_train_fn(self.train_fn)(self.run.config, run_dir)
        except stop_request.StoppedAtCheckpoint as stopped:
            return Outcome(self.run.run_id, "cancelled", f"rank {rank}: stopped with rank 0 after the checkpoint "
                                                         f"of step {stopped.step}")
        except Exception as exc:
            if signals.seen:                  # rank 0 stopped on purpose and left the collectives
                return Outcome(self.run.run_id, "cancelled", f"rank {rank}: stopped with rank 0 ({type(exc).__name__})")
            raise
        return Outcome(self.run.run_id, "done", f"rank {rank} of {world}")


# ---- pieces ------------------------------------------------------------------------------------------
def _use_allocated_cpus(env) -> None:
    """One thread per CPU allocated to this task (else the submitting shell's OMP_NUM_THREADS is inherited,
    or torch takes every core of the node)."""
    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if not cpus and os.environ.get("SLURM_CPUS_ON_NODE", "").isdigit():
        tasks_here = max(1, env.num_tasks // max(1, env.num_nodes))
        cpus = str(max(1, int(os.environ["SLURM_CPUS_ON_NODE"]) // tasks_here))
    if not cpus:
        return
    for name in _THREAD_ENV:
        os.environ[name] = cpus
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(cpus))


def _join_process_group(env):
    """torch.distributed over the job's tasks (env:// variables exported for Accelerate); returns the TCPStore
    that rank 0 uses to tell the others whether to train."""
    import torch
    import torch.distributed as dist

    # MASTER_ADDR = the job's first node (SLURM_JOB_NODELIST), RANK = SLURM_PROCID, LOCAL_RANK = SLURM_LOCALID,
    # WORLD_SIZE = SLURM_NTASKS, MASTER_PORT from the job id (or an inherited MASTER_PORT).
    submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    if torch.cuda.is_available():
        torch.cuda.set_device(env.local_rank % torch.cuda.device_count())
        backend = "nccl"
    else:
        backend = "gloo"
    check_rendezvous(os.environ["MASTER_ADDR"], env.num_nodes, env.node, backend)
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), env.num_tasks,
                          is_master=env.global_rank == 0, timeout=timedelta(minutes=30))
    dist.init_process_group(backend, store=store, rank=env.global_rank, world_size=env.num_tasks)
    return store


def _addresses(host: str) -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)})


def _all_loopback(addresses: list[str]) -> bool:
    return all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def check_rendezvous(master_addr: str, num_nodes: int, node: int, backend: str) -> None:
    """Fail with a clear message, instead of a hang, where a multi-node rendezvous cannot work from this node:
    the first node's name does not resolve here, or resolves to loopback on another node (each node would wait
    for itself); or gloo would pick a loopback address for this node (this host's name resolves to loopback and
    GLOO_SOCKET_IFNAME is unset), so the other nodes could never connect to it."""
    where = f"node {node} of {num_nodes} ({socket.gethostname()})"
    try:
        master = _addresses(master_addr)
    except OSError as exc:
        raise RuntimeError(f"{where}: the job's first node {master_addr!r} (MASTER_ADDR, from SLURM_JOB_NODELIST) "
                           f"does not resolve here ({exc}); torch.distributed cannot rendezvous. Make the node "
                           "names resolvable on every node (DNS or /etc/hosts)") from None
    if num_nodes <= 1:
        return
    if node != 0 and _all_loopback(master):
        raise RuntimeError(f"{where}: the job's first node {master_addr!r} (MASTER_ADDR) resolves to a loopback "
                           f"address here ({', '.join(master)}), so this node would rendezvous with itself; fix "
                           "the name's entry in DNS or /etc/hosts on this node")
    if backend == "gloo" and not os.environ.get("GLOO_SOCKET_IFNAME"):
        try:
            own = _addresses(socket.gethostname())
        except OSError:
            own = []
        if not own or _all_loopback(own):
            raise RuntimeError(f"{where}: this host's name resolves to {', '.join(own) or 'nothing'}, so gloo would "
                               "listen on loopback only and the other nodes could not reach this one; set "
                               "GLOO_SOCKET_IFNAME to the interface between the nodes (e.g. in the SLURM setup "
                               "lines) or fix the host's entry in /etc/hosts")


def checkpoint_step(run_dir: Path) -> int | None:
    """The step of run_dir's checkpoint.pt (memory-mapped: the tensors are not read), or None."""
    path = Path(run_dir) / CHECKPOINT_NAME
    if not path.is_file():
        return None
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=False, mmap=True)["step"])


def _record_attempt(runs: RunStore, run_id: str, env) -> None:
    """Status fields of this attempt: the job (as squeue shows it), its restarts, processes, where it resumes."""
    fields: dict[str, Any] = {
        "slurm_job_id": env.job_id, "slurm_raw_job_id": env.raw_job_id, "slurm_nodes": list(env.hostnames),
        "slurm_restarts": int(os.environ.get("SLURM_RESTART_COUNT", "0")), "processes": env.num_tasks,
    }
    step = checkpoint_step(runs.run_dir(run_id))
    fields["resumed_from_step"] = step
    if step is not None:
        print(f"[{run_id}] resumed from step {step} (SLURM job {env.job_id}, restart "
              f"{fields['slurm_restarts']})", flush=True)
    runs.write_status(run_id, "running", **fields)


def _requeue(runs: RunStore, run_id: str, submitit_usr2) -> None:
    """Back to pending, then submitit's own SIGUSR2 handler: checkpoint(), `scontrol requeue`, sys.exit.
    Recorded first: the next attempt cannot start while this process lives."""
    runs.write_status(run_id, "pending", requeued=now_iso(), error=None, finished=None)
    if not callable(submitit_usr2):
        return
    try:
        submitit_usr2(signal.SIGUSR2, None)
    except UncompletedJobError as exc:        # submitit gives up: time limit reached max_requeues times
        message = str(exc).splitlines()[0]
        runs.write_error(run_id, message + "\n")
        runs.write_status(run_id, "failed", finished=now_iso(), error=message)
        raise
