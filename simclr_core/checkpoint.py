"""Atomic checkpoints: a run killed at any moment leaves either the previous or the new file, never half of one."""
from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any

import torch

from simclr_core.atomic_files import atomic_write_bytes
from simclr_core.validation import ConfigError

CHECKPOINT_NAME = "checkpoint.pt"


class CorruptCheckpointError(ConfigError):
    """checkpoint.pt exists but cannot be read (truncated, damaged, or not a checkpoint of this code)."""


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
