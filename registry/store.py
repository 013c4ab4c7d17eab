"""The results store: one folder per run, plain files, safe for several writers.

    <results>/<experiment>/<axis-values>-<hash12>/
        config.json     the resolved RunConfig, experiment, scale, axis point, code version (git, packages)
        status.json     pending | running | done | failed | cancelled, with timestamps, host and pid
        claim.lock      present while a process owns the run (registry/claim.py)
        metrics.jsonl   one JSON object per logged step            (written by the training function)
        checkpoint.pt   the last checkpoint; a re-run resumes from it (written by the training function)
        final.json      final evaluation metrics; its presence means done (written by the training function)
        error.txt       the traceback of the last failure

The results folder is --results-dir, else $SIMCLR_RESULTS_DIR, else ./results. `load_results` turns the
finished runs into the long-form table that reports/ reads.
"""
from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from registry.claim import is_stale, owner_info, read_claim

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
STATES = ("pending", "running", "done", "failed", "cancelled")


def default_results_dir(explicit: str | os.PathLike | None = None) -> Path:
    """--results-dir, else $SIMCLR_RESULTS_DIR, else ./results."""
    return Path(explicit or os.environ.get(RESULTS_DIR_ENV) or "results")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def atomic_write_text(path: Path, text: str) -> None:
    """Write through a temporary file in the same folder and rename it over `path` (readers never see half).

    The same idea as simclr_core.checkpoint.atomic_write_bytes, repeated here so that the registry never
    imports torch (its CLI stays fast, and worker processes set their thread counts before torch loads).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


class RunStore:
    """Files of the runs under one results folder; every write is atomic."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = default_results_dir(root)

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
        return (self.run_dir(run_id) / FINAL_NAME).is_file()

    def has_checkpoint(self, run_id: str) -> bool:
        return (self.run_dir(run_id) / CHECKPOINT_NAME).is_file()

    def error_text(self, run_id: str) -> str | None:
        try:
            return (self.run_dir(run_id) / ERROR_NAME).read_text()
        except FileNotFoundError:
            return None

    def state(self, run_id: str) -> str:
        """One of STATES. final.json means done, whatever status.json says; a run whose status says running
        but whose owner is gone (no claim, or a stale one) reads as cancelled: it stopped without a word."""
        if self.is_done(run_id):
            return "done"
        status = self.status(run_id)
        if status is None:
            return "pending"
        state = status.get("state", "pending")
        if state == "running":
            claim = read_claim(self.run_dir(run_id))
            if claim is None or is_stale(claim):
                return "cancelled"
        return state

    def run_ids(self) -> Iterator[str]:
        """Ids of every stored run (folders holding a config.json), sorted."""
        if not self.root.is_dir():
            return iter(())
        return iter(sorted(str(p.parent.relative_to(self.root)) for p in self.root.glob(f"*/*/{CONFIG_NAME}")))

    # ---- writing -----------------------------------------------------------------------------------
    def write_config(self, run: "Run", code: dict[str, Any]) -> None:
        atomic_write_text(self.run_dir(run.run_id) / CONFIG_NAME, _dump({
            "run_id": run.run_id, "experiment": run.experiment, "scale": run.scale, "point": dict(run.point),
            "config": run.config.to_dict(), "code": code, "written_at": now_iso(),
        }))

    def write_status(self, run_id: str, state: str, **fields: Any) -> dict[str, Any]:
        """Replace status.json, keeping the earlier fields (started, attempts) that `fields` do not change."""
        if state not in STATES:
            raise ValueError(f"state {state!r} is not one of {STATES}")
        status = {**(self.status(run_id) or {}), **fields, "state": state, "updated": now_iso()}
        atomic_write_text(self.run_dir(run_id) / STATUS_NAME, _dump(status))
        return status

    def mark_pending(self, run: "Run", code: dict[str, Any]) -> bool:
        """Record a planned run (config.json + status pending) unless it already has a status; True if new."""
        run_dir = self.run_dir(run.run_id)
        if (run_dir / STATUS_NAME).exists():
            return False
        if not (run_dir / CONFIG_NAME).exists():
            self.write_config(run, code)
        status = _dump({"state": "pending", "run_id": run.run_id, "created": now_iso(), "updated": now_iso()})
        # Create-if-absent without a race: link a finished temporary file to the final name.
        fd, tmp = tempfile.mkstemp(prefix=f".{STATUS_NAME}.", dir=run_dir)
        with os.fdopen(fd, "w") as f:
            f.write(status)
        try:
            os.link(tmp, run_dir / STATUS_NAME)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def write_error(self, run_id: str, text: str) -> None:
        atomic_write_text(self.run_dir(run_id) / ERROR_NAME, text)

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
def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
    return out


def load_results(results_dir: str | os.PathLike | None = None) -> "pd.DataFrame":
    """Finished runs as a long-form table: one row per (run_id, metric).

    Columns: run_id, experiment, scale, label, seed, git_sha, git_dirty, metric, value; `axis.<name>` for
    each axis value of the run's point (paper units, e.g. axis.first = "crop"); and every config field
    flattened to its dotted key ("loss.temperature", "augment.ops", ...; lists become tuples). Only the
    numeric entries of final.json become metrics.
    """
    import pandas as pd

    store = RunStore(results_dir)
    rows = []
    for run_id in store.run_ids():
        final, stored = store.final(run_id), store.config(run_id)
        if final is None or stored is None:
            continue
        config = _flatten(stored["config"])
        code = stored.get("code") or {}
        common = {
            "run_id": run_id, "experiment": stored["experiment"], "scale": stored["scale"],
            "label": run_id.partition("/")[2].rpartition("-")[0], "seed": config.get("seed"),
            "git_sha": code.get("git_sha"), "git_dirty": code.get("git_dirty"),
            **{f"axis.{k}": v for k, v in stored.get("point", {}).items()},
            **config,
        }
        for metric, value in sorted(final.items()):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                rows.append({**common, "metric": metric, "value": float(value)})
    leading = ["run_id", "experiment", "scale", "label", "seed", "git_sha", "git_dirty", "metric", "value"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=leading)
    return frame[leading + [c for c in frame.columns if c not in leading]]
