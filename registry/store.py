"""The results store: one folder per run, plain files, safe for several writers.

    <results>/<experiment>/<axis-values>-<hash12>/
        config.json     the resolved RunConfig, experiment, scale, axis point, code version (git, packages)
        status.json     pending | running | done | failed | cancelled, with timestamps, host and pid
        claim.lock      present while a process owns the run (registry/claim.py)
        metrics.jsonl   one JSON object per logged step            (written by the training function)
        checkpoint.pt   the last checkpoint; a re-run resumes from it (written by the training function)
        final.json      final evaluation metrics; its presence means done (written by the training function)
        evaluation-partial.json  the metrics of the protocols (and fine-tunings of one) an interrupted final
                        evaluation finished, until final.json is written (simclr_core/partial_evaluation.py)
        finetune-progress.pt  the saved state of the fine-tuning that evaluation was in, until its metrics are
                        saved (simclr_core/finetune_progress.py)
        error.txt       the traceback of the last failure
        discarded-<time>/  the files of an earlier attempt, moved aside by `registry run ... --redo`

`--redo` first replaces status.json, in one write, by a pending one that names the discarded-<time>/ folder
(`discarding_into`) and holds the earlier status.json's text; then it creates that folder, writes the earlier status.json
there and moves the other files in: a run so marked is not done, whatever files a kill left in place, and the next
process to claim it finishes the move (`finish_discard`) before anything else. No folder exists before the mark that
names it, so a kill at any point leaves no folder that nothing would finish.

A run whose config.json, final.json or checkpoint.pt cannot be read is `corrupt` (`RunStore.problem` says
which file and why): it is never counted as done, skipped as done or resumed from, and
`python -m registry run NAME --only ID --redo` trains it again, keeping the damaged files.

The results folder is --results-dir, else $SIMCLR_RESULTS_DIR, else ./results. `load_results` turns the
finished runs into the long-form table that reports/ reads.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from registry.claim import claim_is_stale, owner_info, read_claim
from simclr_core.atomic_files import (atomic_write_bytes, atomic_write_text, create_if_absent, nearest_existing,
                                      remove_abandoned_temps)
from simclr_core.finetune_progress import PROGRESS_NAME
from simclr_core.partial_evaluation import PARTIAL_NAME
from simclr_core.validation import ConfigError

if TYPE_CHECKING:  # pandas is imported only by load_results
    import pandas as pd

    from registry.declare import Run

RESULTS_DIR_ENV = "SIMCLR_RESULTS_DIR"
CONFIG_NAME = "config.json"
STATUS_NAME = "status.json"
METRICS_NAME = "metrics.jsonl"
CHECKPOINT_NAME = "checkpoint.pt"
FINAL_NAME = "final.json"
ERROR_NAME = "error.txt"
STATES = ("pending", "running", "done", "failed", "cancelled", "corrupt")
DISCARDED_PREFIX = "discarded-"
# status.json's field naming the discarded-<time>/ folder that `run --redo` is moving the run's files into.
DISCARDING_FIELD = "discarding_into"
# ... and the text of the status.json that mark replaced, until finish_discard writes it into that folder.
DISCARDED_STATUS_FIELD = "discarded_status_text"
# What `run --redo` moves aside (status.json is copied), final.json first: from the first move the files left
# cannot make the run look done, even to a reader that does not know DISCARDING_FIELD.
_MOVED_ASIDE = (FINAL_NAME, PARTIAL_NAME, PROGRESS_NAME, CHECKPOINT_NAME, METRICS_NAME, ERROR_NAME, CONFIG_NAME)


def default_results_dir(explicit: str | os.PathLike | None = None) -> Path:
    """--results-dir, else $SIMCLR_RESULTS_DIR, else ./results. A leading ~ is the home folder: the shell does not
    expand it in `--results-dir=~/results` or in a quoted setting, and a folder named "~" is never meant."""
    named = explicit or os.environ.get(RESULTS_DIR_ENV) or "results"
    try:
        return Path(named).expanduser()
    except RuntimeError:          # ~someone who has no account here
        where = "--results-dir" if explicit else f"${RESULTS_DIR_ENV}"
        raise ConfigError(f"the results folder {named} ({where}) names the home folder of a user this machine does "
                          "not know; give the folder's full path") from None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"


def _load_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the JSON object in `path`, None), or (None, why it is not one); (None, None) when the file is missing."""
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        return None, None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, f"{path.name} is not valid JSON ({exc})"
    if not isinstance(value, dict):
        return None, f"{path.name} holds a JSON {type(value).__name__}, not an object"
    return value, None


def _read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when the file is missing or damaged (`_json_problem` says why)."""
    return _load_json(path)[0]


def _json_problem(path: Path) -> str | None:
    """Why `path` is not a readable JSON object, or None when it is one or does not exist."""
    return _load_json(path)[1]


def checkpoint_problem(path: Path) -> str | None:
    """Why `path` cannot be a checkpoint torch.save wrote, or None. torch.save writes a zip archive whose
    directory sits at the end, so reading the directory (not the tensors) catches a truncated file cheaply."""
    try:
        with zipfile.ZipFile(path) as archive:
            archive.namelist()
    except (FileNotFoundError, PermissionError):     # absent, or not ours to judge: training will say so
        return None
    except (zipfile.BadZipFile, EOFError) as exc:
        return f"{path.name} is truncated or damaged ({exc})"
    return None


class RunStore:
    """Files of the runs under one results folder; every write is atomic."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = default_results_dir(root)
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"the results folder {self.root} is a file, not a folder; choose another with "
                              f"--results-dir DIR or ${RESULTS_DIR_ENV}")
        above = nearest_existing(self.root.parent)
        if not above.is_dir():     # every read below it would fail: Not a directory
            raise ConfigError(f"the results folder {self.root} lies under {above}, which is a file; choose another "
                              f"with --results-dir DIR or ${RESULTS_DIR_ENV}")

    def ensure_writable(self) -> "RunStore":
        """Create the results folder if needed and check that runs can be written into it."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=self.root)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise ConfigError(f"cannot write to the results folder {self.root} ({exc.strerror or exc}); choose "
                              f"another with --results-dir DIR or ${RESULTS_DIR_ENV}") from exc
        return self

    def run_dir(self, run_id: str) -> Path:
        return self.root / run_id

    # ---- reading -----------------------------------------------------------------------------------
    def config(self, run_id: str) -> dict[str, Any] | None:
        return _read_json(self.run_dir(run_id) / CONFIG_NAME)

    def status(self, run_id: str) -> dict[str, Any] | None:
        return _read_json(self.run_dir(run_id) / STATUS_NAME)

    def final(self, run_id: str) -> dict[str, Any] | None:
        return _read_json(self.run_dir(run_id) / FINAL_NAME)

    def is_done(self, run_id: str) -> bool:
        """final.json exists and holds a JSON object (a damaged one makes the run corrupt, not done), and no
        `run --redo` is moving the run's files aside."""
        return self.final(run_id) is not None and self.discarding(run_id) is None

    def discarding(self, run_id: str) -> str | None:
        """The discarded-<time>/ folder that a `run --redo` is moving the run's files into (or was, until a kill
        stopped it: `finish_discard` finishes it), else None."""
        folder = (self.status(run_id) or {}).get(DISCARDING_FIELD)
        return folder if isinstance(folder, str) and folder.startswith(DISCARDED_PREFIX) and "/" not in folder else None

    def problem(self, run_id: str) -> str | None:
        """Why the run's files cannot be trusted ("final.json is not valid JSON (...)"), or None."""
        run_dir = self.run_dir(run_id)
        found = [p for p in (_json_problem(run_dir / CONFIG_NAME), _json_problem(run_dir / FINAL_NAME),
                             checkpoint_problem(run_dir / CHECKPOINT_NAME)) if p]
        if (run_dir / FINAL_NAME).exists() and not (run_dir / CONFIG_NAME).exists():
            found.insert(0, f"{CONFIG_NAME} is missing")
        return "; ".join(found) or None

    def pretraining_from(self, run_id: str) -> str | None:
        """The run whose pretraining this one evaluated (registry/pretraining.py), or None where it trained its own:
        final.json's record, else status.json's, written before training (a run stopped between train()'s final.json
        and the record added to it is done all the same)."""
        return (self.final(run_id) or {}).get("pretraining_from") or (self.status(run_id) or {}).get("pretraining_from")

    def has_checkpoint(self, run_id: str) -> bool:
        return (self.run_dir(run_id) / CHECKPOINT_NAME).is_file()

    def error_text(self, run_id: str) -> str | None:
        try:
            return (self.run_dir(run_id) / ERROR_NAME).read_text()
        except FileNotFoundError:
            return None

    def state(self, run_id: str) -> str:
        """One of STATES. Damaged files mean corrupt; else final.json means done, whatever status.json says;
        a run whose status says running but whose owner is gone (no claim, or a stale one) reads as
        cancelled: it stopped without a word."""
        if self.problem(run_id):
            return "corrupt"
        if self.is_done(run_id):
            return "done"
        status = self.status(run_id)
        if status is None:
            return "pending"
        state = status.get("state", "pending")
        if state == "done":      # final.json is gone (it decides): the run trains, or resumes, again
            return "pending"
        if state == "running":
            claim = read_claim(self.run_dir(run_id))
            if claim is None or claim_is_stale(self.run_dir(run_id), claim):
                return "cancelled"
        return state

    def why_cancelled(self, run_id: str) -> str:
        """For a run in state cancelled: how it stopped, as far as its files tell, and what comes next."""
        status = self.status(run_id) or {}
        resumes = ("the next `run` resumes it from its checkpoint" if self.has_checkpoint(run_id)
                   else "the next `run` trains it from the start (it had written no checkpoint)")
        if status.get("state") == "cancelled":
            cause = {"KeyboardInterrupt": "Ctrl-C", "RunCancelled": "a termination signal (SIGTERM)"}.get(
                status.get("error"), status.get("error") or "an interruption")
            return f"stopped by {cause} at {status.get('finished', '?')}; {resumes}"
        where = f"pid {status.get('pid', '?')} on {status.get('host', '?')}"
        return (f"its process ({where}, attempt {status.get('attempt', '?')} started {status.get('started', '?')}) "
                "ended without recording why: it was killed (by the kernel's out-of-memory killer when memory "
                "ran out: `dmesg` says; by `kill -9`; by a job's time or memory limit) or its machine went down; "
                + resumes)

    def run_ids(self) -> Iterator[str]:
        """Ids of every stored run (folders holding a config.json, status.json or final.json), sorted."""
        if not self.root.is_dir():
            return iter(())
        return iter(sorted({str(p.parent.relative_to(self.root)) for name in (CONFIG_NAME, STATUS_NAME, FINAL_NAME)
                            for p in self.root.glob(f"*/*/{name}")}))

    # ---- writing -----------------------------------------------------------------------------------
    def write_config(self, run: "Run", code: dict[str, Any]) -> None:
        atomic_write_text(self.run_dir(run.run_id) / CONFIG_NAME, _dump({
            "run_id": run.run_id, "experiment": run.experiment, "scale": run.scale, "point": dict(run.point),
            "overrides": dict(run.overrides), "config": run.config.to_dict(), "code": code,
            "written_at": now_iso(),
        }))

    def write_status(self, run_id: str, state: str, **fields: Any) -> dict[str, Any]:
        """Replace status.json, keeping the earlier fields (started, attempts) that `fields` do not change."""
        if state not in STATES:
            raise ValueError(f"state {state!r} is not one of {STATES}")
        status = {**(self.status(run_id) or {}), **fields, "state": state, "updated": now_iso()}
        atomic_write_text(self.run_dir(run_id) / STATUS_NAME, _dump(status))
        return status

    def mark_pending(self, run: "Run", code: dict[str, Any], **fields: Any) -> bool:
        """Record a planned run (config.json + status pending, with `fields`) unless it already has a status;
        True if new."""
        run_dir = self.run_dir(run.run_id)
        if (run_dir / STATUS_NAME).exists():
            return False
        if not (run_dir / CONFIG_NAME).exists():
            self.write_config(run, code)
        status = _dump({"state": "pending", "run_id": run.run_id, "created": now_iso(), "updated": now_iso(),
                        **fields})
        return create_if_absent(run_dir / STATUS_NAME, status)

    def write_error(self, run_id: str, text: str) -> None:
        atomic_write_text(self.run_dir(run_id) / ERROR_NAME, text)

    def discard(self, run_id: str, **fields: Any) -> Path | None:
        """Move every file of the run into <run_dir>/discarded-<UTC time>/ (nothing is deleted) and leave a pending
        status.json with `fields`, so that it trains again from scratch; the caller holds the run's claim. Returns
        that folder, or None if the run had no files."""
        folder = self.begin_discard(run_id, **fields)
        self.finish_discard(run_id)
        return folder

    def begin_discard(self, run_id: str, **fields: Any) -> Path | None:
        """discard's first step, one write: a pending status.json with `fields` that names a new discarded-<time>/
        folder (DISCARDING_FIELD) and holds the text of the status.json it replaces (DISCARDED_STATUS_FIELD); the
        folder itself is finish_discard's to create, so a kill before or after this write leaves no folder that no mark
        names. Where a discard was begun already, that folder, its status updated with `fields`. Returns the folder's
        path; None (a pending status with `fields`) when the run has no files."""
        run_dir = self.run_dir(run_id)
        folder = self.discarding(run_id)
        if folder is not None:
            self.write_status(run_id, "pending", **fields)
            return run_dir / folder
        fresh = {"state": "pending", "run_id": run_id, "created": now_iso(), "updated": now_iso(), **fields}
        if not any((run_dir / name).exists() for name in (STATUS_NAME, *_MOVED_ASIDE)):
            atomic_write_text(run_dir / STATUS_NAME, _dump(fresh))
            return None
        folder = f"{DISCARDED_PREFIX}{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S.%fZ')}"
        earlier = {}
        if (run_dir / STATUS_NAME).exists():     # kept byte for byte, even where it is not valid JSON
            earlier = {DISCARDED_STATUS_FIELD: (run_dir / STATUS_NAME).read_bytes().decode("utf-8", "surrogateescape")}
        atomic_write_text(run_dir / STATUS_NAME, _dump({**fresh, DISCARDING_FIELD: folder, **earlier}))
        return run_dir / folder

    def finish_discard(self, run_id: str) -> Path | None:
        """Move the files a begun discard has not moved yet into its folder, then drop DISCARDING_FIELD from
        status.json; the caller holds the run's claim. The folder, or None when no discard was begun."""
        run_dir, folder = self.run_dir(run_id), self.discarding(run_id)
        if folder is None:
            return None
        (run_dir / folder).mkdir(exist_ok=True)
        status = self.status(run_id) or {}
        earlier = status.get(DISCARDED_STATUS_FIELD)
        if isinstance(earlier, str) and not (run_dir / folder / STATUS_NAME).exists():
            content = earlier.encode("utf-8", "surrogateescape")
            atomic_write_bytes(run_dir / folder / STATUS_NAME, lambda f: f.write(content))
        for name in _MOVED_ASIDE:
            if (run_dir / name).exists():
                target, n = run_dir / folder / name, 1
                while target.exists():         # never over a file moved there before
                    target, n = run_dir / folder / f"{name}.{n}", n + 1
                shutil.move(str(run_dir / name), str(target))
        status = {k: v for k, v in status.items() if k not in (DISCARDING_FIELD, DISCARDED_STATUS_FIELD)}
        atomic_write_text(run_dir / STATUS_NAME, _dump({**status, "updated": now_iso()}))
        return run_dir / folder

    def remove_abandoned_temps(self, run_id: str) -> None:
        """Delete the temporary files that writes of the run's small files left when a kill cut them short (train()
        deletes those of the files it writes). Several processes write status.json: only temporaries whose writer
        is gone go (simclr_core.atomic_files.remove_abandoned_temps)."""
        for name in (CONFIG_NAME, STATUS_NAME, ERROR_NAME, FINAL_NAME):
            remove_abandoned_temps(self.run_dir(run_id) / name)

    def clear_error(self, run_id: str) -> None:
        (self.run_dir(run_id) / ERROR_NAME).unlink(missing_ok=True)

    def write_final(self, run_id: str, metrics: dict[str, Any]) -> None:
        atomic_write_text(self.run_dir(run_id) / FINAL_NAME, _dump(metrics))

    def start_attempt(self, run: "Run", code: dict[str, Any]) -> dict[str, Any]:
        """Called by the claim owner just before training: fresh config.json, status running."""
        self.write_config(run, code)
        self.clear_error(run.run_id)
        previous = self.status(run.run_id) or {}
        return self.write_status(run.run_id, "running", **owner_info(), started=now_iso(), finished=None,
                                 attempt=int(previous.get("attempt", 0)) + 1,
                                 resumed=self.has_checkpoint(run.run_id), error=None)


# ---- the long-form results table ------------------------------------------------------------------
def flatten_config(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A stored config as {dotted key: value}, lists as tuples."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
    return out


def load_results(results_dir: str | os.PathLike | None = None) -> "pd.DataFrame":
    """Finished runs as a long-form table: one row per (run_id, metric).

    Runs with a final.json that cannot be used (damaged files: `RunStore.problem`) are left out and listed
    in ``frame.attrs["left_out"]`` as {run_id: reason}, for the report to say so.

    Columns: run_id, experiment, scale, label, seed, git_sha, git_dirty, metric, value; `axis.<name>` for
    each axis value of the run's point (paper units, e.g. axis.first = "crop"); and every config field
    flattened to its dotted key ("loss.temperature", "augment.ops", ...; lists become tuples). Only the
    numeric entries of final.json become metrics; one that is not a number (NaN, infinite) does not, and is listed
    in ``frame.attrs["not_numbers"]`` as {run_id: "linear_top1 = nan, ..."}, for the report to say so. Six more
    describe the run as stored, for reports that
    say what ran: `device` (final.json's, None if absent), `compiled` (final.json's `compile`: the
    torch.compile mode that ran, "off", or None where it was not recorded), `pretraining_from` (the run whose
    pretraining it evaluated, registry/pretraining.py; None if it trained itself), `written_at` (config.json's
    ISO time), `config_json` (the stored config as JSON, exactly as written, for comparing configs across
    versions) and `overrides_json` (the key=value overrides the run was made with, as JSON; None where
    config.json predates their recording).
    """
    import pandas as pd

    store = RunStore(results_dir)
    rows, left_out, not_numbers = [], {}, {}
    for run_id in store.run_ids():
        final_path = store.run_dir(run_id) / FINAL_NAME
        if not final_path.exists():
            continue
        problem = store.problem(run_id) or (store.discarding(run_id) and
                                            "a `run --redo` was stopped moving its files aside (the next `run` "
                                            "finishes that and trains it again)")
        final, stored = store.final(run_id), store.config(run_id)
        if not problem and not isinstance(stored.get("config"), dict):
            problem = "config.json has no 'config' object"
        if problem:
            left_out[run_id] = problem
            continue
        config = flatten_config(stored["config"])
        code = stored.get("code") or {}
        common = {
            "run_id": run_id, "experiment": stored.get("experiment", run_id.partition("/")[0]),
            "scale": stored.get("scale", "?"),
            "label": run_id.partition("/")[2].rpartition("-")[0], "seed": config.get("seed"),
            "git_sha": code.get("git_sha"), "git_dirty": code.get("git_dirty"),
            "device": final.get("device"), "compiled": final.get("compile"),
            # A run resumed on another device: every device that ran it, in order (final.json's devices_seen).
            "devices_seen": " then ".join(map(str, final["devices_seen"]))
            if isinstance(final.get("devices_seen"), list) and len(final["devices_seen"]) > 1 else None,
            "pretraining_from": store.pretraining_from(run_id),
            "written_at": stored.get("written_at"),
            "config_json": json.dumps(stored["config"], sort_keys=True),
            "overrides_json": json.dumps(stored["overrides"], sort_keys=True)
            if isinstance(stored.get("overrides"), dict) else None,
            **{f"axis.{k}": v for k, v in stored.get("point", {}).items()},
            **config,
        }
        for metric, value in sorted(final.items()):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if math.isfinite(value):
                    rows.append({**common, "metric": metric, "value": float(value)})
                else:       # averaged, it would make a cell NaN or hide that the cell has one run fewer
                    not_numbers.setdefault(run_id, []).append(f"{metric} = {value}")
    leading = ["run_id", "experiment", "scale", "label", "seed", "git_sha", "git_dirty", "metric", "value"]
    frame = pd.DataFrame(rows)
    frame = pd.DataFrame(columns=leading) if frame.empty else frame[leading + [c for c in frame.columns
                                                                                if c not in leading]]
    frame.attrs["left_out"] = left_out
    frame.attrs["not_numbers"] = {run_id: ", ".join(entries) for run_id, entries in not_numbers.items()}
    return frame
