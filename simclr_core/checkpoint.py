"""Atomic checkpoints: a run killed at any moment leaves either the previous or the new file, never half of one."""
from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any, Mapping

import torch

from simclr_core.atomic_files import atomic_write_bytes
from simclr_core.validation import ConfigError

CHECKPOINT_NAME = "checkpoint.pt"
# Config keys that say how a run is carried out or evaluated, not what it trains: a resumed run may change them
# (a moved dataset, another logging cadence, a later stop, other evaluations of the same pretraining, on more or
# fewer test images). A key ending in "." covers its section.
RESUMABLE_CHANGES = ("data.data_dir", "data.test_limit", "trackers", "log_every_steps", "checkpoint_every_steps",
                     "compile", "views_ahead", "max_steps", "eval.")


class CorruptCheckpointError(ConfigError):
    """checkpoint.pt exists but cannot be read (truncated, damaged, or not a checkpoint of this code)."""


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, lambda f: f.write((json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()))


def atomic_torch_save(path: Path, obj: Any) -> None:
    """torch.save(obj) to `path`, replacing it atomically. Serialised in memory first: torch.save into a file turns
    an OSError (a full disk) into an opaque "enforce fail at inline_container.cc"; a plain write keeps the errno."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, lambda f: f.write(buffer.getbuffer()))


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> Path:
    path = Path(run_dir) / CHECKPOINT_NAME
    atomic_torch_save(path, state)
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


def require_same_training(run_dir: Path, checkpoint: Mapping[str, Any], cfg) -> None:
    """ConfigError where run_dir's `checkpoint` was trained under another config than `cfg` (beyond
    RESUMABLE_CHANGES, and data.loader as it resolves): resuming would continue those weights under settings they
    were not trained with, and report them as this config's. A checkpoint without a config, or of an older
    config layout, is not compared."""
    from simclr_core.config import RunConfig
    from simclr_core.data.catalog import loader_for

    try:
        stored = RunConfig.from_dict(checkpoint["config"])
    except (KeyError, TypeError, ConfigError):
        return

    def trained(config: RunConfig) -> dict[str, Any]:
        flat = config.with_overrides({"data.loader": loader_for(config.data.dataset, config.data.loader)}).flat()
        return {k: v for k, v in flat.items()
                if not any(k == key or (key.endswith(".") and k.startswith(key)) for key in RESUMABLE_CHANGES)}

    before, now = trained(stored), trained(cfg)
    changed = [k for k in now if before.get(k) != now[k]]
    if not changed:
        return
    shown = "; ".join(f"{k} was {before.get(k)!r}, now {now[k]!r}" for k in changed[:3])
    more = f" (and {len(changed) - 3} more: {', '.join(changed[3:])})" if len(changed) > 3 else ""
    path = Path(run_dir) / CHECKPOINT_NAME
    raise ConfigError(f"{path} (step {checkpoint.get('step')}) was trained under another config: {shown}{more}. "
                      "Resuming would continue its weights under settings they were not trained with. Run this config "
                      f"in another folder, or move {path} aside to train it from scratch")
