"""The protocols a final evaluation finished before it was cut off, kept so that the rerun does not run them again.

train() writes each protocol's metrics to `evaluation-partial.json` in the run folder (replaced whole, as soon as the
protocol ends) and deletes the file once final.json is written. A run killed during a long evaluation (fine-tuning,
transfer, 90 epochs of linear evaluation; SIGKILL, a SLURM time limit, Ctrl-C) then resumes it where it stopped: a
job shorter than the whole evaluation still gets through it, as long as each protocol fits in one job.

The saved metrics are reused only for the same evaluation, which `evaluation_key` pins down:
  - the weights evaluated: a SHA-256 of the network's state (encoder and head, parameters and buffers), with the
    checkpoint's step. Hashing what is evaluated, not the checkpoint file's size and time, holds where those mislead:
    a run folder copied without its times, a file system that keeps times to the second, a pretraining redone to
    the same size. It reads the weights once (a second or so for a ResNet-50 on a GPU), nothing beside an evaluation.
  - the whole config (flat): the evaluation settings (eval.*), the images (data.*), seed, precision, channels_last.
    A setting that cannot change a number (a tracker, the logging cadence) also starts the evaluation afresh;
    that errs on the safe side.
  - the device kind (a GPU's model name, or cpu): final.json names one device for all its numbers.
Every protocol draws its randomness from generators seeded with the run's seed, never from a random state another
protocol leaves behind, so a protocol run alone gives the numbers it gives after the others: the resumed evaluation's
final.json holds what an uninterrupted one's would.

Nothing here imports torch at import time: the registry names the file (--redo moves it aside) without loading it.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from simclr_core.atomic_files import atomic_write_text

PARTIAL_NAME = "evaluation-partial.json"


def weights_digest(module) -> str:
    """SHA-256 (hex) of `module`'s state_dict: every tensor's name, dtype, shape and bytes, in order."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def device_kind(device) -> str:
    """A GPU's model name, or the device type (cpu): what a protocol's last digits may depend on."""
    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def evaluation_key(network, step: int, cfg, device) -> dict[str, Any]:
    """What the saved metrics must have been evaluated on to be reused (see the module's docstring)."""
    return {"step": step, "weights_sha256": weights_digest(network), "device": device_kind(device),
            "config": cfg.flat()}


class PartialEvaluation:
    """The metrics of the protocols an earlier attempt finished on the same evaluation (`kept`), and the file that
    records each protocol this attempt finishes (`save`)."""

    def __init__(self, run_dir: str | Path, key: dict[str, Any]):
        self.path = Path(run_dir) / PARTIAL_NAME
        self.key = json.loads(json.dumps(key))       # as it reads back: tuples become lists
        self.protocols: dict[str, dict[str, Any]] = {}
        self.discarded = ""                           # why a saved file was not reused ("" if none, or reused)
        self._clock = time.perf_counter()
        saved = self._read()
        if saved is None:
            return
        changed = _differences(saved.get("key"), self.key)
        if changed:
            self.discarded = f"{self.path.name} was saved for other {changed}"
        else:
            self.protocols = saved["protocols"]

    @property
    def kept(self) -> dict[str, dict[str, Any]]:
        """{protocol: its metrics} of the protocols finished before, on the same evaluation."""
        return {name: saved["metrics"] for name, saved in self.protocols.items()}

    @property
    def kept_seconds(self) -> float:
        """The seconds the kept protocols took, in the attempts that ran them."""
        return sum(saved["seconds"] for saved in self.protocols.values())

    def save(self, name: str, metrics: dict[str, Any]) -> None:
        """Record protocol `name`'s metrics, and the seconds since the last save (or since the evaluation began)."""
        now = time.perf_counter()
        self.protocols[name] = {"metrics": metrics, "seconds": now - self._clock}
        self._clock = now
        atomic_write_text(self.path, json.dumps({"key": self.key, "protocols": self.protocols}, indent=2) + "\n")

    def remove(self) -> None:
        """Delete the file: final.json holds the metrics now."""
        self.path.unlink(missing_ok=True)

    def _read(self) -> dict[str, Any] | None:
        try:
            saved = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.discarded = f"{self.path.name} could not be read ({exc})"
            return None
        protocols = saved.get("protocols") if isinstance(saved, dict) else None
        if not isinstance(protocols, dict) or not all(map(_is_saved_protocol, protocols.values())):
            self.discarded = f"{self.path.name} is not a record of finished protocols"
            return None
        return saved


def _is_saved_protocol(saved: Any) -> bool:
    return (isinstance(saved, dict) and isinstance(saved.get("metrics"), dict)
            and isinstance(saved.get("seconds"), (int, float)))


def _differences(saved: Any, now: dict[str, Any]) -> str:
    """What differs between a saved key and this evaluation's, in words ("" if nothing)."""
    if not isinstance(saved, dict):
        return "settings (it names none)"
    parts = [{"step": "step", "weights_sha256": "weights", "device": "device"}[k]
             for k in ("step", "weights_sha256", "device") if saved.get(k) != now[k]]
    saved_config = saved.get("config") if isinstance(saved.get("config"), dict) else {}
    config = sorted(k for k in now["config"].keys() | saved_config.keys()
                    if saved_config.get(k) != now["config"].get(k))
    if config:
        parts.append("settings (" + ", ".join(config[:3]) + (f" and {len(config) - 3} more" if len(config) > 3
                                                               else "") + ")")
    return ", ".join(parts)


__all__ = ["PARTIAL_NAME", "PartialEvaluation", "evaluation_key", "weights_digest"]
