"""Atomic checkpoints: a run killed at any moment leaves either the previous or the new file, never half of one."""
from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from simclr_core.validation import ConfigError

CHECKPOINT_NAME = "checkpoint.pt"


class CorruptCheckpointError(ConfigError):
    """checkpoint.pt exists but cannot be read (truncated, damaged, or not a checkpoint of this code)."""


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(file_object)`` on a temporary file in the same folder, fsync it, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:      # e.g. a full disk: name the file and the free space; the previous file stays
        if os.path.exists(tmp):
            os.unlink(tmp)
        free = shutil.disk_usage(path.parent).free
        raise OSError(exc.errno, f"could not write {path}: {exc.strerror or exc} ({free / 2**20:,.0f} MiB free "
                                 f"on that disk); the previous {path.name}, if any, is unchanged") from exc
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, lambda f: f.write((json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()))


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> Path:
    path = Path(run_dir) / CHECKPOINT_NAME
    # Serialised in memory first: torch.save into a file turns an OSError (a full disk) into an opaque
    # "enforce fail at inline_container.cc"; a plain write keeps the errno.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, lambda f: f.write(buffer.getbuffer()))
    return path


def load_checkpoint(run_dir: Path, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """The last checkpoint of a run, or None for a fresh run."""
    path = Path(run_dir) / CHECKPOINT_NAME
    if not path.exists():
        return None
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, ImportError, AttributeError,
            pickle.UnpicklingError) as exc:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        raise CorruptCheckpointError(
            f"{path} cannot be read ({reason}): it is truncated or damaged. Move it aside to train the run "
            "from scratch (with the registry: python -m registry run NAME --only RUN_ID --redo)") from exc
    if not isinstance(checkpoint, dict) or "step" not in checkpoint:
        raise CorruptCheckpointError(f"{path} is not a checkpoint written by train() (no 'step'); move it aside "
                                     "to train the run from scratch")
    return checkpoint
