"""One Optuna study driven by ask-and-tell through the registry's executors, resumable after any interrupt.

    study = open_study(plan, storage)        # created, or loaded and continued (same name -> same study)
    drive_study(plan, study, executor, results_dir, trials=N, max_parallel=K)

The loop: fail-and-retry orphaned trials -> ask up to K trials -> each suggestion becomes an axis point,
then registry runs with stable ids -> dispatch the runs that are not done yet -> tell each trial as its
runs finish (read from the results store, the one place every executor writes) -> repeat until the study
holds N counted trials. A trial whose runs are already done is told at once from final.json: repeating a
known configuration never trains again.

A failed trial (its run raised, or its metric is missing) counts and is not asked again unless the driver
is started with --retry-failed, which enqueues it once more (its run is retried, as `registry run` retries
failed runs). A trial whose runs were cancelled (a SLURM job scancel'd while the driver lived) is told FAIL too,
so that this driver does not fight the cancel, and the next driver asks it again, as it does an orphan's.

The same code serves every executor. LocalExecutor.dispatch returns when its runs are finished; a SLURM
executor returns `submitted` outcomes and the loop polls the store until the runs end, keeping K trials in
flight (ask k, submit k, tell as they finish).

Interrupts. A trial is RUNNING from ask to tell; a driver that dies leaves it RUNNING. Such an orphan is
found on the next pass of any driver (its recorded owner is a dead process on this host, or its heartbeat,
refreshed every HEARTBEAT_S by the live owner, is older than STALE_AFTER_S), told FAIL, and re-enqueued
with the same parameters and `retry_of` = its number, Optuna's RetryFailedTrialCallback convention. The
retry names the same runs, so it resumes from their checkpoints or reuses their final.json. Counted
trials: finished (COMPLETE or FAIL) trials that have parameters and were not retried.
"""
from __future__ import annotations

import errno
import json
import math
import os
import shlex
import sqlite3
import threading
import time
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from registry.claim import is_stale, owner_info
from registry.declare import Run
from registry.launch import Executor, Outcome, exception_chain, redo_command, require_same_images
from registry.provenance import code_version
from registry.store import RunStore
from registry.sweep_space import StudyPlan
from simclr_core.atomic_files import nearest_existing, symlinks_work
from simclr_core.validation import ConfigError

if TYPE_CHECKING:  # optuna is imported when a study is opened, so `python -m registry --help` stays fast
    import optuna

HEARTBEAT_S = 60.0
STALE_AFTER_S = 600.0
STORAGE_KINDS = ("sqlite", "journal")
# SQLAlchemy's driver name -> the package that provides it, for the message when it is not installed.
DRIVER_PACKAGES = {"psycopg": "'psycopg[binary]'", "psycopg2": "psycopg2-binary", "pg8000": "pg8000",
                   "asyncpg": "asyncpg", "mysqldb": "mysqlclient", "pymysql": "PyMySQL",
                   "mysqlconnector": "mysql-connector-python", "mariadbconnector": "mariadb",
                   "pyodbc": "pyodbc", "oracledb": "oracledb", "cx_oracle": "cx_Oracle"}
SQLITE_HEADER = b"SQLite format 3\x00"
TPE_STARTUP_TRIALS = 5
Report = Callable[[str], None]


# ---- storage ------------------------------------------------------------------------------------------
def storage_forms() -> str:
    """The valid --storage forms, for messages; a postgresql:// URL's driver package is SQLAlchemy's default
    driver's (psycopg from SQLAlchemy 2.1 on, psycopg2 before)."""
    from sqlalchemy.engine import make_url

    driver = make_url("postgresql://").get_dialect().driver
    return ("'sqlite' (the default: <results>/optuna/<study>.db), 'journal' (<results>/optuna/<study>.journal), "
            "'journal:///path/to/file.journal', 'sqlite:///path/to/file.db', or a database URL: "
            f"'postgresql://user@host/db' (pip install {DRIVER_PACKAGES.get(driver, driver)}), "
            "'mysql+pymysql://user@host/db' (pip install PyMySQL)")


def storage_url(spec: str | None, study_name: str, results_dir: str | Path) -> str:
    """--storage -> a URL. None/"sqlite": sqlite:///<results>/optuna/<study>.db; "journal":
    journal:///<results>/optuna/<study>.journal; "journal:///abs/path" or "journal:rel/path": that journal
    file; any other "scheme://..." is an SQLAlchemy URL given to Optuna's RDBStorage as is."""
    folder = Path(results_dir).resolve() / "optuna"
    if spec in (None, "", "sqlite"):
        return f"sqlite:///{folder / f'{study_name}.db'}"
    if spec == "journal":
        return f"journal://{folder / f'{study_name}.journal'}"
    if spec.startswith("journal:"):
        path = spec.removeprefix("journal:").removeprefix("//")
        if not path:
            raise ConfigError(f"--storage {spec!r} names no file; e.g. journal:///shared/optuna/temperature.journal")
        return f"journal://{Path(path).expanduser().resolve()}"
    if "://" in spec:
        return spec
    hint = ""
    if "/" in spec or "." in spec:       # a bare file path: say which URL names it
        where = Path(spec).resolve()
        hint = f" (for the file {spec}: sqlite://{where} for an SQLite database, journal://{where} for a journal)"
    raise ConfigError(f"--storage={spec!r} is not valid{hint}; choose one of: {storage_forms()}")


def check_storage(url: str) -> None:
    """Refuse, before anything runs, a storage Optuna could not open: an unknown URL scheme, a database driver
    that is not installed, or an existing file that is not a study database or journal (left untouched)."""
    if url.startswith("journal://"):
        _check_journal(Path(url.removeprefix("journal://")))
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    shown = _shown(url)
    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()          # NoSuchModuleError (an ArgumentError) for an unknown scheme
    except ArgumentError:
        scheme = url.partition("://")[0]
        raise ConfigError(f"--storage {shown}: unknown storage scheme {scheme + '://'!r}; valid forms: "
                          f"{storage_forms()}") from None
    try:
        (getattr(dialect, "import_dbapi", None) or dialect.dbapi)()
    except ImportError as exc:
        package = DRIVER_PACKAGES.get(parsed.get_driver_name(), exc.name or "its driver")
        raise ConfigError(f"--storage {shown}: the {parsed.get_backend_name()} driver {parsed.get_driver_name()!r} "
                          f"is not installed ({exc}); install it in this environment (pip install {package}), "
                          "or use another storage, e.g. --storage sqlite or --storage journal") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        _check_sqlite(Path(parsed.database))


def _shown(url: str) -> str:
    """The URL for messages, its password hidden."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _not_a_study(path: Path, kind: str, detail: str) -> ConfigError:
    return ConfigError(f"{path} is not a valid Optuna study {kind} ({detail}); it was left untouched. Move it "
                       f"aside to start a new study there (mv {shlex.quote(str(path))} "
                       f"{shlex.quote(str(path) + '.bad')}), or point --storage elsewhere")


def _check_sqlite(path: Path) -> None:
    _require_folder_above(path, "database")
    if not path.exists():
        return
    if not path.is_file():
        raise _not_a_study(path, "database", "it is not a file")
    with open(path, "rb") as f:
        header = f.read(len(SQLITE_HEADER))
    if header and header != SQLITE_HEADER:
        raise _not_a_study(path, "database", "not an SQLite file")
    try:  # read-only: a file that is not ours must not gain Optuna's tables
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc) or "malformed" in str(exc):
            raise _not_a_study(path, "database", f"SQLite says: {exc}") from None
        return                             # e.g. a journal left by a killed writer: Optuna's own open recovers it
    if tables and "studies" not in tables:
        raise _not_a_study(path, "database", f"an SQLite database of other tables: {', '.join(sorted(tables))}")


def _require_folder_above(path: Path, kind: str) -> None:
    """Refuse a study file whose folder would lie below a file (--storage journal:///notes.txt/j)."""
    above = nearest_existing(path.parent)
    if not above.is_dir():
        raise ConfigError(f"--storage: the study {kind} {path} would lie below {above}, which is a file; name a file "
                          "in a folder, e.g. --storage journal:///shared/optuna/temperature.journal")


def _check_journal(path: Path) -> None:
    _require_folder_above(path, "journal")
    if not path.exists():
        return
    if not path.is_file():
        raise _not_a_study(path, "journal", "it is not a file")
    *lines, tail = path.read_bytes().split(b"\n")
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except ValueError:                 # JSONDecodeError, UnicodeDecodeError
            record = None
        if not isinstance(record, dict) or "op_code" not in record:
            raise _not_a_study(path, "journal", f"line {number} is not a journal record")
    # A last line without its newline may be a record another driver is appending right now; garbage is not.
    if tail.strip() and not tail.startswith(b"{"):
        raise _not_a_study(path, "journal", f"line {len(lines) + 1} is not a journal record")


def open_storage(url: str) -> "optuna.storages.BaseStorage | str":
    """A JournalStorage for journal:// URLs (file locks that work on NFS, for many SLURM workers), else the URL."""
    if not url.startswith("journal://"):
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return url
    import optuna

    path = Path(url.removeprefix("journal://"))
    path.parent.mkdir(parents=True, exist_ok=True)
    journal = optuna.storages.journal
    # Optuna's default lock is a symlink, which exFAT, FAT and some FUSE or SMB mounts cannot make; every driver
    # of one journal sees the same file system, so all of them choose the same kind of lock.
    lock = None if symlinks_work(path.parent) else journal.JournalFileOpenLock(str(path))
    return optuna.storages.JournalStorage(journal.JournalFileBackend(str(path), lock_obj=lock))


def _grid_sampler_class() -> type:
    from optuna.samplers import GridSampler

    class AskTellGridSampler(GridSampler):
        """GridSampler minus its after_trial, which calls study.stop() and so raises RuntimeError at the last
        tell outside study.optimize (optuna issues #4121, #5141); the driver checks exhaustion itself."""

        def after_trial(self, study, trial, state, values) -> None:
            return None

        def value_of(self, trial: "optuna.trial.FrozenTrial") -> dict[str, Any] | None:
            """The grid point assigned to `trial` before it suggested anything (for its retry)."""
            grid_id = trial.system_attrs.get("grid_id")
            if grid_id is None:
                return None
            return dict(zip(self._param_names, self._all_grids[grid_id]))

    return AskTellGridSampler


def make_sampler(plan: StudyPlan, seed: int) -> "optuna.samplers.BaseSampler":
    """GridSampler over the experiment's declared values, or TPE (log-uniform range) beyond them."""
    import optuna

    if plan.sampler == "grid":
        # Always seed 0: a trial's grid_id indexes the seed-shuffled grid, so another seed on a continued study
        # would read the stored ids as other values (the order of a full grid does not matter anyway).
        return _grid_sampler_class()({plan.sweep.axis: list(plan.grid)}, seed=0)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=TPE_STARTUP_TRIALS)


# SQLite's words for a disk that refused a write (its errors carry no errno), as the errno they mean.
_SQLITE_DISK_ERRORS = {"database or disk is full": errno.ENOSPC, "disk I/O error": errno.EIO,
                       "attempt to write a readonly database": errno.EROFS}


def storage_disk_error(exc: BaseException | None) -> tuple[int, str] | None:
    """(errno, SQLite's message) for a study storage's write that the disk refused (full, failing or read-only),
    found anywhere in `exc`'s chain (Optuna wraps SQLAlchemy's error, which wraps sqlite3's); else None."""
    for error in exception_chain(exc):
        if type(error).__module__ == "sqlite3":
            found = next((code for words, code in _SQLITE_DISK_ERRORS.items() if words in str(error)), None)
            if found is not None:
                return found, str(error)
    return None


def open_study_at(plan: StudyPlan, url: str, sampler_seed: int = 0) -> "optuna.Study":
    """open_study on the storage at `url` (check_storage it first); a database that fails to open is one clear
    error naming it, not SQLAlchemy's traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return open_study(plan, open_storage(url), sampler_seed)
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        refused = storage_disk_error(exc)
        if refused is not None:
            raise OSError(refused[0], f"cannot open the study storage {_shown(url)}: {refused[1]}") from exc
        if url.startswith("sqlite:///") and ("not a database" in detail or "malformed" in detail):
            raise _not_a_study(Path(url.removeprefix("sqlite:///")), "database", f"SQLite says: {detail}") from None
        raise ConfigError(f"cannot open the study storage {_shown(url)}: {detail}; check that the database "
                          "server is reachable and the URL's user, host and database exist, or choose another "
                          f"storage: {storage_forms()}") from None


def open_study(plan: StudyPlan, storage: Any, sampler_seed: int = 0) -> "optuna.Study":
    """Create the plan's study, or load it to continue; its identity is recorded in the study's user attrs."""
    import optuna

    study = optuna.create_study(study_name=plan.study_name, storage=storage, direction="maximize",
                                sampler=make_sampler(plan, sampler_seed), load_if_exists=True)
    if plan.sampler == "tpe":
        # A continued (or concurrent) driver must not replay the first driver's random start-up suggestions.
        study.sampler = make_sampler(plan, sampler_seed + len(study.get_trials(deepcopy=False)))
    identity = {"sweep": plan.sweep.name, "experiment": plan.experiment.name, "scale": plan.scale.name,
                "sampler": plan.sampler, "metric": plan.metric, "axis": plan.sweep.axis,
                "split_axis": plan.sweep.split_axis, "split": plan.split}
    if study.user_attrs.get("identity") != identity:
        study.set_user_attr("identity", identity)
    return study


def asked_runs(plan: StudyPlan, study: "optuna.Study") -> list[Run]:
    """The runs of every trial the study has asked so far (each trial's value, one run per seed)."""
    values = dict.fromkeys(t.params[plan.sweep.axis] for t in study.get_trials(deepcopy=False)
                           if plan.sweep.axis in t.params)
    return [run for value in values for run in plan.runs_at(value)]


# ---- counting and orphans --------------------------------------------------------------------------------
def trial_counts(study: "optuna.Study") -> dict[str, int]:
    """counted: finished trials with parameters that no later trial retries; running; waiting (enqueued)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    counted = sum(1 for t in trials if t.state.is_finished() and t.params and t.number not in retried)
    running = sum(1 for t in trials if t.state == TrialState.RUNNING)
    waiting = sum(1 for t in trials if t.state == TrialState.WAITING)
    return {"counted": counted, "running": running, "waiting": waiting}


# The drivers of this process that are driving now: a trial that names this process as its driver but none of
# these was left by a driver that ended (an error in a notebook, say), though the process lives on.
_DRIVING: set[str] = set()


def orphan_reason(trial: "optuna.trial.FrozenTrial", now: float | None = None) -> str | None:
    """Why a RUNNING trial has no live driver, or None when it may still have one."""
    now = time.time() if now is None else now
    driver = trial.user_attrs.get("driver")
    if driver and is_stale(driver):
        return f"its driver {driver.get('host')}:{driver.get('pid')} is gone"
    if (driver and driver.get("driver_id") and driver["driver_id"] not in _DRIVING
            and driver.get("host") == owner_info()["host"] and driver.get("pid") == os.getpid()):
        return "its driver, an earlier sweep in this process, has ended"
    beat = trial.user_attrs.get("heartbeat")
    if beat is None and trial.datetime_start is not None:
        beat = trial.datetime_start.timestamp()      # naive local time, as Optuna records it
    if beat is not None and now - beat > STALE_AFTER_S:
        return f"no heartbeat for {now - beat:.0f} s (> {STALE_AFTER_S:.0f} s)"
    return None


def recover_orphans(study: "optuna.Study", mine: set[int], report: Report) -> int:
    """Tell orphaned RUNNING trials FAIL and enqueue each one's parameters again; returns how many."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    recovered = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = None if trial.number in mine else orphan_reason(trial)
        if reason is None:
            continue
        params = dict(trial.params)
        if not params and hasattr(study.sampler, "value_of"):
            params = study.sampler.value_of(trial) or {}
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, RuntimeError, UpdateFinishedTrialError):
            continue                      # another driver got there first; it enqueues the retry
        if params:
            study.enqueue_trial(params, user_attrs={"retry_of": trial.number, "retry_reason": reason})
        report(f"trial {trial.number} was left running ({reason}): failed it"
               + (f" and re-asked {asked_values(trial, params)}" if params else "; it had suggested nothing yet"))
        recovered += 1
    return recovered


def asked_values(trial: "optuna.trial.FrozenTrial", params: dict[str, Any]) -> str:
    """`params` as `key=value`, each value as the trial's run trains it (its recorded point, rounded to the sweep's
    significant digits) where the trial got that far, else as suggested."""
    point = trial.user_attrs.get("point") or {}
    return ", ".join(f"{key}={point.get(key, value)}" for key, value in params.items())


def reask_cancelled(study: "optuna.Study", report: Report) -> int:
    """Enqueue again the parameters of every trial told FAIL because its runs were cancelled (a SLURM job
    scancel'd, a process stopped by a signal) while its driver lived: an interruption, not a result, so the next
    driver asks it again as it does an orphan's (its runs resume from their checkpoints). Returns how many."""
    return _ask_again(study, report, lambda trial: bool(trial.user_attrs.get("cancelled")), "cancelled",
                      "was cancelled")


def retry_failed(study: "optuna.Study", report: Report) -> int:
    """Enqueue the parameters of every counted FAIL trial again (--retry-failed); returns how many."""
    return _ask_again(study, report, lambda trial: True, "--retry-failed", "failed")


def _ask_again(study: "optuna.Study", report: Report, chosen: Callable[[Any], bool], reason: str, what: str) -> int:
    """Enqueue once more the parameters of the FAIL trials `chosen` picks that no trial retries yet."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    again = [t for t in trials if t.state == TrialState.FAIL and t.params and t.number not in retried and chosen(t)]
    for trial in again:
        study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number, "retry_reason": reason})
        report(f"trial {trial.number} {what} ({trial.user_attrs.get('error', 'no error recorded')}): re-asked "
               f"{asked_values(trial, trial.params)}")
    return len(again)


# ---- the driver ---------------------------------------------------------------------------------------------
@dataclass
class _InFlight:
    trial: "optuna.trial.Trial"
    value: float
    runs: list[Run]
    reused: bool
    status_before: dict[str, Any] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)


class _Heartbeat:
    """Refreshes the `heartbeat` user attr of the trials this driver holds, so others can tell it is alive."""

    def __init__(self, inflight: dict[int, _InFlight], lock: threading.Lock, interval_s: float | None = None):
        self._inflight, self._lock = inflight, lock
        self._interval = HEARTBEAT_S if interval_s is None else interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="sweep-heartbeat", daemon=True)

    def __enter__(self) -> "_Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                trials = [item.trial for item in self._inflight.values()]
            for trial in trials:
                try:
                    trial.set_user_attr("heartbeat", time.time())
                except Exception:          # told meanwhile by the main thread: nothing left to keep alive
                    pass


class StudyDriver:
    """Runs one study's ask-and-tell loop through an executor (see the module docstring)."""

    def __init__(self, plan: StudyPlan, study: "optuna.Study", executor: Executor, results_dir: str | Path, *,
                 report: Report = print, poll_s: float = 10.0, on_tell: Callable[[], None] | None = None):
        self.plan, self.study, self.executor = plan, study, executor
        self.store = RunStore(results_dir)
        self.report, self.poll_s = report, poll_s
        self.on_tell = on_tell or (lambda: None)
        self.inflight: dict[int, _InFlight] = {}
        self.lock = threading.Lock()
        self.failed_now = 0
        self.told = 0
        self.refused: Outcome | None = None     # a run the disk refused a write: the study asks no more trials
        self._code = code_version()
        self._driver = {**owner_info(), "driver_id": uuid.uuid4().hex}

    # ---- the loop -------------------------------------------------------------------------------------
    def drive(self, trials: int, max_parallel: int = 1) -> None:
        """Until the study holds `trials` counted trials (grid: at most one per grid value)."""
        _DRIVING.add(self._driver["driver_id"])
        try:
            self._drive(trials, max_parallel)
        finally:
            _DRIVING.discard(self._driver["driver_id"])

    def _drive(self, trials: int, max_parallel: int) -> None:
        with _Heartbeat(self.inflight, self.lock):
            while True:
                recover_orphans(self.study, set(self.inflight), self.report)
                counts = trial_counts(self.study)
                to_ask = trials - counts["counted"] - counts["running"]
                new = []
                while to_ask > 0 and len(self.inflight) < max_parallel:
                    new.append(self._ask())
                    to_ask -= 1
                if not self.inflight:
                    return
                told_before = self.told
                self._dispatch(new)
                self._reconcile()
                self.settle()
                if self.refused is not None:
                    raise OSError(self.refused.refused_errno, f"{self.refused.run_id}: {self.refused.detail}; no "
                                                              f"more trials were started")
                if not new and self.told == told_before:   # only runs elsewhere are left: wait for them
                    time.sleep(self.poll_s)

    def _ask(self) -> _InFlight:
        trial = self.study.ask()
        value = trial.suggest_float(self.plan.sweep.axis, self.plan.low, self.plan.high, log=True)
        trial.set_user_attr("driver", self._driver)
        trial.set_user_attr("heartbeat", time.time())
        try:
            runs = self.plan.runs_at(value)
        except ConfigError as exc:       # the range is validated up front; this is a bug, recorded not hidden
            trial.set_user_attr("error", str(exc))
            self.study.tell(trial, state=_fail_state())
            raise
        try:    # a value another sweep on other images trained already (another study storage) is not ours
            require_same_images(runs, self.store, again="")
        except ConfigError as exc:
            trial.set_user_attr("error", str(exc)[:500])
            self.study.tell(trial, state=_fail_state())
            raise
        point = self.plan.point(value)
        trial.set_user_attr("point", point)
        trial.set_user_attr("run_ids", [r.run_id for r in runs])
        item = _InFlight(trial, point[self.plan.sweep.axis], runs,
                         reused=all(self.store.is_done(r.run_id) for r in runs))
        with self.lock:
            self.inflight[trial.number] = item
        return item

    def _dispatch(self, new: list[_InFlight]) -> None:
        todo = []
        for item in new:
            for run in item.runs:
                if self.store.is_done(run.run_id):
                    continue
                self.store.mark_pending(run, self._code)
                item.status_before[run.run_id] = self.store.status(run.run_id) or {}
                todo.append((item, run))
        if not todo:
            return
        outcomes = self.executor.dispatch([run for _, run in todo], self.store.root)
        for (item, run), outcome in zip(todo, outcomes):
            item.outcomes[run.run_id] = outcome
            if outcome.disk_refused and self.refused is None:
                self.refused = outcome

    def _reconcile(self) -> None:
        """Under SLURM, let the store learn of jobs that ended without their run recording it (cancelled while
        queued, node lost): registry/slurm_state.py reads sacct and records those runs cancelled or failed."""
        if getattr(self.executor, "name", "") != "slurm":
            return
        from registry.slurm_state import reconcile

        waiting = [run.run_id for item in self.inflight.values() for run in item.runs
                   if not self.store.is_done(run.run_id)]
        if waiting:
            reconcile(self.store, waiting)

    # ---- telling ----------------------------------------------------------------------------------------
    def settle(self) -> int:
        """Tell every in-flight trial whose runs have all ended; returns how many were told."""
        told = 0
        for number, item in list(self.inflight.items()):
            results = [self._run_result(item, run) for run in item.runs]
            if any(state == "waiting" for state, _ in results):
                continue
            self._tell(item, results)
            with self.lock:
                del self.inflight[number]
            told += 1
        self.told += told
        return told

    def _redo_hint(self, run: Run) -> str:
        """How to train a damaged trial run again: `run --redo` selects it where it is one of the experiment's
        declared runs (a grid value); another value's run only a sweep asks for, once its files are aside."""
        try:
            declared = {r.run_id for r in self.plan.experiment.runs(self.plan.scale, self.plan.overrides)}
        except ConfigError:
            declared = set()
        if run.run_id in declared:
            return f"{redo_command(run)} trains it again"
        folder = self.store.run_dir(run.run_id)
        return (f"move {shlex.quote(str(folder))} aside (mv it to {shlex.quote(str(folder) + '.damaged')}) and run "
                "this sweep again with --retry-failed: the trial is asked again and its run trains from scratch")

    def _run_result(self, item: _InFlight, run: Run) -> tuple[str, Any]:
        """("done", metric value or None) | ("failed" or "cancelled", reason) | ("waiting", None)."""
        problem = self.store.problem(run.run_id)
        if problem:      # damaged files: no result to use, and the executors will not train it again by themselves
            return "failed", f"corrupt: {problem}; {self._redo_hint(run)}"
        if self.store.is_done(run.run_id):
            return "done", (self.store.final(run.run_id) or {}).get(self.plan.metric)
        outcome = item.outcomes.get(run.run_id)
        if outcome is not None and outcome.state in ("failed", "cancelled"):
            return outcome.state, f"{outcome.state}: {outcome.detail}"
        status = self.store.status(run.run_id) or {}
        # A run submitted elsewhere (SLURM) or owned by another process: wait for a status newer than the one
        # it had when we dispatched (an earlier attempt's failure must not end this trial).
        ended = self.store.state(run.run_id)
        if ended in ("failed", "cancelled") and status != item.status_before.get(run.run_id):
            return ended, f"{ended}: {status.get('error') or 'no error recorded'}"
        return "waiting", None

    def _tell(self, item: _InFlight, results: list[tuple[str, Any]]) -> None:
        axis, trial = self.plan.sweep.axis, item.trial
        failures = [detail for state, detail in results if state in ("failed", "cancelled")]
        cancelled = bool(failures) and all(state != "failed" for state, _ in results)
        values = [detail for state, detail in results if state == "done"]
        if not failures and not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            failures = [f"final.json has no finite {self.plan.metric!r} (the scale's eval.protocols decide it)"]
        where = f"[{self.plan.study_name}] trial {trial.number} {axis}={item.value:g}"
        if failures:
            trial.set_user_attr("error", failures[0][:500])
            if cancelled:
                trial.set_user_attr("cancelled", True)
            self.study.tell(trial, state=_fail_state())
            self.failed_now += 1
            then = "; the next run of this sweep asks it again (its runs resume)" if cancelled else ""
            self.report(f"{where} FAILED: {failures[0]}  ({item.runs[0].run_id}){then}")
        else:
            trial.set_user_attr("reused", item.reused)
            value = sum(values) / len(values)
            self.study.tell(trial, value)
            donor = self.store.pretraining_from(item.runs[0].run_id)
            how = ("reused stored result" if item.reused else
                   f"evaluated the pretraining of {donor}" if donor else "trained")
            self.report(f"{where} -> {self.plan.metric}={value:.2f} ({how}: {item.runs[0].run_id})")
        self.on_tell()


def _fail_state():
    from optuna.trial import TrialState

    return TrialState.FAIL
