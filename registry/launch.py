"""Dispatch runs: `execute_run` is the unit of work, an `Executor` decides where it runs.

    execute_run(run, results_dir)   claim -> config.json + status running -> train(cfg, run_dir) ->
                                    status done | failed (error.txt) | cancelled -> release the claim
    LocalExecutor()                 no GPU: in this process, one run after the other (max_parallel=K: K runs
                                    at a time, each in its own fresh process, so a crash stays there)
                                    G GPUs: up to G*runs_per_gpu runs at a time (max_parallel caps it), each
                                    in its own process pinned to one GPU (registry/placement.py)
    make_executor("slurm")          registry/slurm.py's SlurmExecutor (job arrays via submitit)

Every executor calls `execute_run` wherever the run lands (here, a pool process, a SLURM node), so
claims, skipping, resuming and failure records behave the same everywhere. The training function is
`simclr_core.train.train(cfg, run_dir) -> dict`; it writes metrics.jsonl, checkpoint.pt and final.json,
and resumes from run_dir/checkpoint.pt by itself. Executors accept another function with that contract
(a callable, or "module:function" so that it is imported only inside the worker process).
"""
from __future__ import annotations

import importlib
import multiprocessing
import os
import shlex
import signal
import sys
import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from registry.claim import break_if_stale, describe_claim, describe_owner, read_claim, try_claim
from registry.declare import Run
from registry.host_memory import check_host_memory
from registry.overrides import override_args
from registry.placement import Placement, plan_placement
from registry.pretraining import pretraining_key, reuse_pretraining, trains_own_pretraining
from registry.provenance import code_version
from registry.store import RunStore, now_iso
from simclr_core.atomic_files import disk_trouble
from simclr_core.cgroups import usable_cpus
from simclr_core.validation import ConfigError
from simclr_core.warning_format import print_warnings_on_one_line

TrainFn = Callable[[Any, Path], dict]
DEFAULT_TRAIN_FN = "simclr_core.train:train"
OUTCOMES = ("done", "failed", "cancelled", "skipped", "submitted", "corrupt")
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# Exceptions whose message is written for the user; FloatingPointError covers train()'s NonFiniteLossError,
# OSError the data layer's DataNotFoundError and a full disk (without importing torch here).
_USER_ERRORS = (ConfigError, FloatingPointError, OSError)


class RunCancelled(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM); raised inside the training function's frame."""


# The interrupt a signal handler raised, kept until execute_run has classified the run's end. A signal
# that lands while C++ code calls back into Python (e.g. torch.save writing a checkpoint) reaches us
# wrapped in a RuntimeError; this is how such a run is still recorded as cancelled, not failed.
_raised_interrupt: list[RunCancelled] = []


def raise_interrupt(exc: RunCancelled) -> None:
    """Raise ``exc`` from a signal handler, remembering it for execute_run."""
    _raised_interrupt[:] = [exc]
    raise exc


def _take_raised_interrupt() -> RunCancelled | None:
    return _raised_interrupt.pop() if _raised_interrupt else None


@dataclass(frozen=True)
class Outcome:
    run_id: str
    state: str          # one of OUTCOMES
    detail: str = ""
    # The errno of a write the disk refused (full, over quota, read-only) or of a disk that stopped answering,
    # which failed the run: the runs after it would train only to fail the same way, so an executor starts no more
    # of them (`not_started`).
    refused_errno: int | None = None

    @property
    def disk_refused(self) -> bool:
        return self.refused_errno is not None


def exception_chain(exc: BaseException | None) -> Iterator[BaseException]:
    """`exc`, then the exception it was raised from or while handling, and so on (each once)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        yield exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__


def disk_refusal(exc: BaseException | None) -> int | None:
    """The errno when `exc`, or an exception it was raised from or while handling, is the disk refusing a write
    or no longer answering (atomic_files.disk_trouble)."""
    return next((e.errno for e in exception_chain(exc)
                 if isinstance(e, OSError) and disk_trouble(e.errno) is not None), None)


def out_of_memory(exc: BaseException | None) -> bool:
    """True when `exc`, or an exception in its chain, is an allocation that failed: torch's OutOfMemoryError
    (CUDA, or simclr_core's CPU block cache), Python's MemoryError, or the CPU allocator's RuntimeError."""
    return any(isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError"
               or (isinstance(e, RuntimeError) and "can't allocate memory" in str(e)) for e in exception_chain(exc))


def out_of_memory_advice(run: Run) -> str:
    return (f"the run ran out of memory at batch_size={run.config.batch_size}: lower it, or run fewer runs at "
            "once on this machine or GPU (--max-parallel, --runs-per-gpu); `python -m registry run ... "
            "--dry-run` estimates the peak on a CPU")


NOT_STARTED = "not started"


def not_started(runs: Sequence[Run], refused: Outcome) -> list[Outcome]:
    """Outcomes of the runs left unstarted after `refused`, the run whose write the disk refused."""
    what = disk_trouble(refused.refused_errno)[0]
    return [Outcome(run.run_id, "skipped", f"{NOT_STARTED}: {what} ({refused.run_id})") for run in runs]


def show_command(experiment: str, scale: str, results_dir: str | os.PathLike | None = None,
                 overrides: Mapping[str, Any] | None = None, seeds: Sequence[int] | None = None) -> str:
    """The `show` command that lists the runs a `run` with these arguments made, and their tracebacks."""
    command = f"python -m registry show {experiment} --scale {scale}"
    if results_dir is not None:
        command += f" --results-dir {shlex.quote(str(results_dir))}"
    command += override_args(overrides or {})
    return command + (" --seeds " + " ".join(map(str, seeds)) if seeds else "")   # last: it takes every word after


def redo_command(run: Run) -> str:
    """The command that trains `run` again from scratch, moving its present files aside."""
    return (f"python -m registry run {run.experiment} --scale {run.scale} --only {run.run_id} --redo"
            + override_args(run.overrides))


def resolve_train_fn(train_fn: TrainFn | str | None) -> TrainFn:
    """A callable as is; "module:function" imported now; None -> simclr_core.train:train."""
    if callable(train_fn):
        return train_fn
    module, _, name = (train_fn or DEFAULT_TRAIN_FN).partition(":")
    return getattr(importlib.import_module(module), name)


def raise_on_sigterm() -> None:
    """Turn SIGTERM into RunCancelled so a killed run records `cancelled` and releases its claim."""
    def handler(signum: int, frame: object) -> None:
        raise_interrupt(RunCancelled(f"received signal {signum}"))
    signal.signal(signal.SIGTERM, handler)


def exit_at_once_on_another_interrupt() -> None:
    """After an interruption is recorded: a second Ctrl-C or SIGTERM while the interpreter shuts down (impatience)
    exits at once, with the same status, instead of printing a KeyboardInterrupt traceback from whatever finaliser
    it lands in."""
    def leave(signum: int, frame: object) -> None:
        sys.stderr.flush()
        os._exit(130)

    signal.signal(signal.SIGINT, leave)
    signal.signal(signal.SIGTERM, leave)


def require_same_images(runs: Sequence[Run], store: RunStore,
                        again: str = ", or train them again on these images with --redo") -> None:
    """ConfigError, before anything runs, when a finished run of `runs` trained on other images than its config
    now reads: datasets named by their container (an image folder, parquet files) share run ids across folders,
    since ids leave data.data_dir out, and final.json's `data_identity` says which images a run read. A named
    dataset records no identity (its name says which images), but its local copy may be partial: a finished run
    whose final.json counts other training images than the copy here holds is refused too (held_training_images)."""
    from simclr_core.data.feed import GENERIC_DATASETS, data_identity

    identities: dict[str, str | None] = {}
    held: dict[str, int | None] = {}
    for run in runs:
        data = run.config.data
        if not store.is_done(run.run_id) or store.problem(run.run_id):
            continue
        trained = store.final(run.run_id)
        key = repr(data)
        if data.dataset not in GENERIC_DATASETS:
            if trained_split_images(trained) is None:
                continue              # recorded before final.json counted the images: nothing to compare
            if key not in held:
                held[key] = held_training_images(data)
            require_same_image_count(run, trained, held[key], again)
            continue
        if not trained.get("data_identity"):
            continue                  # recorded before runs said which images they read
        if key not in identities:
            identities[key] = data_identity(data)
        if identities[key] not in (None, trained["data_identity"]):
            raise ConfigError(
                f"{run.run_id} is done, but on other images ({trained.get('data_source', 'another folder')}) than "
                f"data.data_dir={data.data_dir} holds: run ids leave the data folder out (a path of one machine), "
                f"so the runs of two {data.dataset} folders share them. Keep each dataset's runs in a results folder "
                f"of its own (--results-dir DIR){again}. No run was started.")


def held_training_images(data: Any) -> int | None:
    """The training images the local copy here of the named dataset `data` (a DataConfig) holds, before
    data.train_limit, counted as the planner counts them (a listing, parquet footers; nothing decoded); None where
    the split is not a local copy (on the Hub, or not found: require_data names it)."""
    from simclr_core.data.feed import local_split_sizes

    return local_split_sizes(data)[0]


def trained_split_images(trained: Mapping[str, Any]) -> int | None:
    """The training images a finished run's split held after data.train_limit, from its final.json:
    `train_split_images` is what it trained on, which on the resident path leaves out the images that could not be
    decoded (`unreadable_images`); None for a run recorded before final.json counted them."""
    count = trained.get("train_split_images")
    if not isinstance(count, int):
        return None
    left_out = trained.get("unreadable_images", 0) if trained.get("data_loader") == "resident" else 0
    return count + (left_out if isinstance(left_out, int) else 0)


def require_same_image_count(run: Run, trained: Mapping[str, Any], held: int | None, again: str) -> None:
    """ConfigError when finished `run` of a named dataset trained on another number of images (`trained`: its
    final.json) than it reads from the local copy here (`held`, before data.train_limit; None: not checked)."""
    recorded = trained_split_images(trained)
    if held is None or recorded is None:
        return
    data = run.config.data
    limited = data.train_limit is not None and data.train_limit < held
    if recorded == (data.train_limit if limited else held):
        return
    where = f"data.data_dir={data.data_dir}" if data.data_dir else "the copy found here"
    kept = f", of which data.train_limit={data.train_limit} keeps {data.train_limit:,}" if limited else ""
    raise ConfigError(
        f"{run.run_id} is done, but on {recorded:,} training images ({trained.get('data_source', 'another copy')}), "
        f"and {where} holds {held:,}{kept}: run ids leave the data folder out (a path of one machine), so the "
        f"runs of two copies of {data.dataset} share them. Keep each copy's runs in a results folder of its own "
        f"(--results-dir DIR){again}. No run was started.")


def preflight_runs(runs: Sequence[Run], train_fn: TrainFn, *, data_elsewhere: bool = False,
                   nothing_started: str = "No run was started.") -> None:
    """The training function's `preflight(config)` (train()'s: the config, the data every run reads, a batch that
    fits in its training split, classes to classify), once per distinct data and evaluation settings and batch
    size, so that a missing dataset is one ConfigError, not one failed run each.

    `data_elsewhere`: the runs read their data on other machines (a SLURM job's node, whose file systems and
    setup lines may differ), so data missing here, or a cache folder this machine cannot write, is a note (once),
    not an error; data found here is checked."""
    noted = False
    for run, exc in preflight_problems(runs, train_fn):
        if data_elsewhere and is_local_to_this_machine(exc):
            if not noted:
                print(f"note: {run.run_id}: not checked before submission, since each job checks on its node, which "
                      f"may differ from this machine: {str(exc).splitlines()[0]}", file=sys.stderr)
                noted = True
            continue
        raise ConfigError(f"{run.run_id}: {exc}\n{nothing_started}") from exc


def preflight_key(run: Run) -> str:
    """What the training function's preflight depends on: runs with the same key are checked once."""
    return repr((run.config.data, run.config.eval, run.config.batch_size))


def preflight_problems(runs: Sequence[Run], train_fn: TrainFn) -> Iterator[tuple[Run, ConfigError | OSError]]:
    """(the first run of a preflight_key, what the training function's preflight raised for it), lazily, for each
    key whose preflight refuses (ConfigError; OSError: missing data, an unreadable file); nothing without one."""
    preflight = getattr(train_fn, "preflight", None)
    if preflight is None:
        return
    checked = set()
    for run in runs:
        key = preflight_key(run)
        if key in checked:
            continue
        checked.add(key)
        try:
            preflight(run.config)
        except (ConfigError, OSError) as exc:
            yield run, exc


def is_local_to_this_machine(problem: BaseException) -> bool:
    """Whether a preflight problem may be this machine's only: data not found, or a cache folder it cannot write
    (a SLURM node has its own file systems and setup lines)."""
    from simclr_core.data.cache import UnwritableFolderError
    from simclr_core.data.locate import DataNotFoundError

    return isinstance(problem, (DataNotFoundError, UnwritableFolderError))


# ---- the unit of work ---------------------------------------------------------------------------------
def execute_run(run: Run, results_dir: str | os.PathLike, train_fn: TrainFn | str | None = None,
                code: dict[str, Any] | None = None) -> Outcome:
    """Run `run` here unless it is done or another live process owns it. Never raises for a failed run:
    the traceback goes to error.txt and the outcome says `failed`. KeyboardInterrupt/SIGTERM mark the run
    cancelled and propagate."""
    store = RunStore(results_dir)
    if store.is_done(run.run_id) and not store.problem(run.run_id):
        return Outcome(run.run_id, "skipped", "done already (final.json)")
    claim = try_claim(store.run_dir(run.run_id))
    if claim is None:
        return Outcome(run.run_id, "skipped", f"claimed by {describe_claim(read_claim(store.run_dir(run.run_id)))}")
    with claim:
        if claim.took_over is not None:
            print(f"[{run.run_id}] took over the claim left by an earlier attempt of this SLURM job, "
                  f"{describe_owner(claim.took_over)}: it was killed before it could release it, and SLURM runs one "
                  "attempt of a job at a time", flush=True)
        store.remove_abandoned_temps(run.run_id)
        finished = store.finish_discard(run.run_id)
        if finished is not None:
            print(f"redo {run.run_id}: finished moving its earlier files into {finished} (a kill had stopped "
                  "`run --redo` there)", flush=True)
        # Judged under the claim: a file another process is still writing is not damage.
        problem = store.problem(run.run_id)
        if problem:
            return Outcome(run.run_id, "corrupt", f"{problem}; {redo_command(run)} trains it again "
                                                  "(the damaged files are kept)")
        if store.is_done(run.run_id):     # finished by another process between our check and our claim
            return Outcome(run.run_id, "skipped", "done already (final.json)")
        status = store.start_attempt(run, code or code_version())
        run_dir = store.run_dir(run.run_id)
        _take_raised_interrupt()
        try:
            donor = reuse_pretraining(store, run.run_id, run.config)
            if donor is None and store.has_checkpoint(run.run_id):
                # an earlier attempt copied it and was stopped (in its evaluation) before final.json said so
                donor = status.get("pretraining_from")
            if donor != status.get("pretraining_from"):     # None: it trains its own
                status = store.write_status(run.run_id, "running", pretraining_from=donor)
            metrics = resolve_train_fn(train_fn)(run.config, run_dir)
        except KeyboardInterrupt as exc:      # includes RunCancelled
            _take_raised_interrupt()
            store.write_status(run.run_id, "cancelled", finished=now_iso(), error=type(exc).__name__)
            raise
        except BaseException as exc:          # a failed run must not stop the others
            store.write_error(run.run_id, traceback.format_exc())
            interrupt = _take_raised_interrupt()
            if interrupt is not None:         # the signal's exception came back wrapped (see above)
                store.write_status(run.run_id, "cancelled", finished=now_iso(), error=type(interrupt).__name__)
                raise interrupt from exc
            summary = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            store.write_status(run.run_id, "failed", finished=now_iso(), error=summary)
            # Errors written for users (bad input, missing data, a damaged checkpoint) are shown whole.
            detail = f"{type(exc).__name__}: {exc}" if isinstance(exc, _USER_ERRORS) else summary
            if out_of_memory(exc):
                detail = f"{summary}\n{out_of_memory_advice(run)}"
            return Outcome(run.run_id, "failed", detail, refused_errno=disk_refusal(exc))
        if not store.is_done(run.run_id):     # the contract says train() writes it; keep the store consistent
            store.write_final(run.run_id, dict(metrics or {}))
        if donor is not None:                 # its pretraining is the donor's: device-hours count it once
            store.write_final(run.run_id, {**(store.final(run.run_id) or {}), "pretraining_from": donor})
        store.write_status(run.run_id, "done", finished=now_iso())
        how = (f"evaluated the pretraining of {donor}" if donor is not None
               else "resumed from checkpoint" if status.get("resumed") else "trained")
        return Outcome(run.run_id, "done", how)


# ---- executors ------------------------------------------------------------------------------------------
class Executor(ABC):
    """Where runs execute. `dispatch` returns one Outcome per run, in the order given."""

    name: str = "executor"

    def check(self, runs: Sequence[Run]) -> None:
        """What can be known wrong with these runs here before any is recorded (ConfigError); none by default."""

    def check_results(self, results_dir: str | os.PathLike) -> None:
        """What this executor needs of the (existing) results folder, before any run is recorded in it
        (ConfigError); nothing beyond RunStore's needs by default."""

    @abstractmethod
    def dispatch(self, runs: Sequence[Run], results_dir: str | os.PathLike) -> list[Outcome]:
        ...


class LocalExecutor(Executor):
    """This machine, as `placement` (default: plan_placement(max_parallel, runs_per_gpu)) says: sequential in
    this process when it has a single slot, else one fresh process per run, at most one per slot at a time.

    Each process gets usable_cpus() // slots threads, and the GPU of its slot, so a segfault or an out-of-memory
    kill loses that run only: the parent records it as failed and gives its slot to the next run.
    """

    name = "local"

    def __init__(self, max_parallel: int | None = None, train_fn: TrainFn | str | None = None,
                 on_outcome: Callable[[Outcome], None] | None = None, runs_per_gpu: int | None = None,
                 placement: Placement | None = None):
        self.placement = placement if placement is not None else plan_placement(max_parallel, runs_per_gpu)
        self.max_parallel = self.placement.workers
        self.train_fn = train_fn
        self.on_outcome = on_outcome or (lambda outcome: None)

    def check(self, runs: Sequence[Run]) -> None:
        """Before any run starts: the training function's `preflight(config)` (train()'s checks the data every
        run reads, and that a batch fits in its training split), once per distinct data and evaluation settings and
        batch size, so that a missing dataset is one error, not one failed run each; and, for train() on the CPU,
        that the runs fit in this machine's memory (the estimate models train(), not other training functions)."""
        train_fn = resolve_train_fn(self.train_fn)
        if not self.placement.gpus and train_fn is resolve_train_fn(DEFAULT_TRAIN_FN):
            check_host_memory(runs, parallel=self.placement.workers)
        preflight_runs(runs, train_fn)

    def dispatch(self, runs: Sequence[Run], results_dir: str | os.PathLike) -> list[Outcome]:
        self.placement.check_memory(runs)
        code = code_version()
        if self.placement.in_process:
            outcomes: list[Outcome] = []
            for run in runs:
                if outcomes and outcomes[-1].disk_refused:
                    outcomes += not_started(runs[len(outcomes):], outcomes[-1])
                    break
                outcomes.append(execute_run(run, results_dir, self.train_fn, code))
                self.on_outcome(outcomes[-1])
            return outcomes
        return self._dispatch_pool(list(runs), results_dir, code)

    def _dispatch_pool(self, runs: list[Run], results_dir: str | os.PathLike, code: dict[str, Any]) -> list[Outcome]:
        context = multiprocessing.get_context("spawn")   # no inherited torch threads or locks
        threads = max(1, usable_cpus() // self.placement.workers)
        outcomes: dict[str, Outcome] = {}
        queue = list(reversed(runs))
        free = list(self.placement.slots)
        active: dict[Connection, tuple[Run, Any, str | None]] = {}
        keys = {run.run_id: pretraining_key(run.config) for run in runs}
        store = RunStore(results_dir)
        own = {run.run_id for run in runs if trains_own_pretraining(store, run.run_id)}
        try:
            while queue or active:
                while queue and free:
                    # A run whose pretraining an active run is training waits for it, to evaluate its checkpoint
                    # (unless it trains its own: --redo).
                    training = {keys[r.run_id] for r, _, _ in active.values()}
                    ready = [i for i in range(len(queue) - 1, -1, -1)
                             if keys[queue[i].run_id] not in training or queue[i].run_id in own]
                    if not ready:
                        break
                    run, device = queue.pop(ready[0]), free.pop(0)
                    receiver, sender = context.Pipe(duplex=False)
                    process = context.Process(target=_pool_worker, name=f"run {run.run_id}", daemon=False,
                                              args=(run, str(results_dir), self.train_fn, code, threads, device,
                                                    sender))
                    process.start()
                    sender.close()
                    active[receiver] = (run, process, device)
                for receiver in wait(list(active)):
                    run, process, device = active.pop(receiver)
                    try:
                        outcome = receiver.recv()
                    except EOFError:          # the process died before reporting
                        outcome = None
                    receiver.close()
                    process.join()
                    free.append(device)       # once the process is gone, with the GPU memory it held
                    if outcome is None:
                        outcome = _record_crash(run, results_dir, process.pid, process.exitcode)
                    outcomes[run.run_id] = outcome
                    self.on_outcome(outcome)
                    if outcome.disk_refused:     # the runs being trained end by themselves
                        outcomes.update((o.run_id, o) for o in not_started(queue, outcome))
                        queue.clear()
        except KeyboardInterrupt as exc:
            _stop_workers([process for _, process, _ in active.values()], forward=isinstance(exc, RunCancelled))
            raise
        return [outcomes[run.run_id] for run in runs]


def _stop_workers(processes: list, forward: bool, grace_s: float = 30.0) -> None:
    """Let each worker record `cancelled` and release its claim, then make sure it is gone.

    Ctrl-C reaches the whole process group, so the workers are already stopping; a SIGTERM (`forward`)
    reached this process only and is passed on.
    """
    if forward:
        for process in processes:
            process.terminate()
    deadline = time.monotonic() + grace_s
    for process in processes:
        process.join(timeout=max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def _pool_worker(run: Run, results_dir: str, train_fn: TrainFn | str | None, code: dict[str, Any],
                 threads: int, device: str | None, sender: Connection) -> None:
    if device is not None:                    # before CUDA starts, which torch does at the first use of a GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    for name in _THREAD_ENV:                  # before torch is imported in this fresh process
        os.environ[name] = str(threads)
    if "torch" in sys.modules:                # a pickled train_fn may have imported it already
        sys.modules["torch"].set_num_threads(threads)
    raise_on_sigterm()
    print_warnings_on_one_line()
    try:
        outcome = execute_run(run, results_dir, train_fn, code)
    except KeyboardInterrupt:
        outcome = Outcome(run.run_id, "cancelled", "interrupted")
    except OSError as exc:                    # the failure itself could not be recorded: the disk is full
        refused = disk_refusal(exc)
        if refused is None:
            raise
        outcome = Outcome(run.run_id, "failed", f"{type(exc).__name__}: {exc}", refused_errno=refused)
    try:
        sender.send(outcome)
    except (BrokenPipeError, ConnectionResetError):
        pass      # the launcher was killed: the run's outcome is in the results folder all the same
    sender.close()


def _record_crash(run: Run, results_dir: str | os.PathLike, pid: int | None, exitcode: int | None) -> Outcome:
    """A pool process died without reporting: record its run as failed (unless it finished) and free it."""
    store = RunStore(results_dir)
    if store.is_done(run.run_id):
        return Outcome(run.run_id, "done", "finished, then its process exited abnormally")
    reason = f"signal {-exitcode}" if exitcode is not None and exitcode < 0 else f"exit code {exitcode}"
    if exitcode == -signal.SIGKILL:
        reason += (": killed, most often by the kernel's out-of-memory killer when memory runs out (`dmesg` "
                   "says); if so, lower batch_size or --max-parallel")
    message = f"the worker process (pid {pid}) running this run died ({reason}) without reporting"
    break_if_stale(store.run_dir(run.run_id))
    status = store.status(run.run_id) or {}
    if status.get("state") == "running" and status.get("pid") == pid:
        store.write_error(run.run_id, message + "\n")
        store.write_status(run.run_id, "failed", finished=now_iso(), error=message)
    return Outcome(run.run_id, "failed", message)


def make_executor(kind: str = "local", **options: Any) -> Executor:
    """"local" -> LocalExecutor(**options); "slurm" -> registry.slurm.SlurmExecutor(**options)."""
    if kind == "local":
        return LocalExecutor(**options)
    if kind == "slurm":
        from registry.slurm import SlurmExecutor   # here, not at the top: registry.slurm imports this module
        return SlurmExecutor(**options)
    raise ConfigError(f"executor {kind!r} is not valid; choose one of: 'local', 'slurm'")
