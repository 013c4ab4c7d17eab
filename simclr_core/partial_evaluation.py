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

A protocol of several fine-tunings (finetune: a label fraction from the pretrained encoder or from scratch; transfer:
linear, finetune, scratch) also saves each one's metrics as it ends ("parts", under the protocol's name; dropped
when the whole protocol is saved): a rerun runs the fine-tunings left, and the one it was in goes on from its last
saved epoch (finetune_progress.py). Each is seeded on its own, so it gives the same numbers run alone.

Each record keeps the seconds it took (`kept_seconds`: what the rerun's final.json adds to its eval_seconds), and a
fine-tuning's progress file the seconds up to its save, which the part it goes on with counts: a killed attempt's
time is lost only after its last save.

Nothing here imports torch at import time: the registry names the file (--redo moves it aside) without loading it.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from simclr_core import stop_request
from simclr_core.atomic_files import atomic_write_text
from simclr_core.finetune_progress import PROGRESS_NAME, SAVE_EVERY_S, ProgressFile

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

    def __init__(self, run_dir: str | Path, key: dict[str, Any], *, label: str = "evaluate",
                 progress_every_s: float = SAVE_EVERY_S):
        self.path = Path(run_dir) / PARTIAL_NAME
        self.key = json.loads(json.dumps(key))       # as it reads back: tuples become lists
        self.protocols: dict[str, dict[str, Any]] = {}
        self.parts: dict[str, dict[str, dict[str, Any]]] = {}   # {protocol: {part: saved}} of unfinished protocols
        self.discarded = ""                           # why a saved file was not reused ("" if none, or reused)
        self.label = label                            # what a fine-tuning's lines about its progress begin with
        self.progress_every_s = progress_every_s
        self.data_finds: dict[str, Any] | None = None   # the images the kept protocols found unreadable
        # () -> the images the evaluation found unreadable so far (a streamed run's Feed.evaluation_finds), kept
        # with each save so that final.json counts them whichever protocols the rerun runs; set by train().
        self.finds_so_far: Callable[[], dict[str, Any] | None] = lambda: None
        self._clock = time.perf_counter()
        self._carried = 0.0       # seconds an earlier attempt spent in the part this one goes on with (its progress)
        # The seconds earlier attempts spent on what this one keeps: train() adds them to its own time. Summed once
        # here, as the records this attempt saves are of its own time; a part's progress resumed adds its seconds.
        self.kept_seconds = 0.0
        saved = self._read()
        if saved is None:
            return
        changed = differences(saved.get("key"), self.key)
        if changed:
            self.discarded = f"{self.path.name} was saved for other {changed}"
        else:
            self.protocols = saved["protocols"]
            self.parts = saved.get("parts", {})
            self.data_finds = saved["data_finds"] if isinstance(saved.get("data_finds"), dict) else None
            self.kept_seconds = (sum(kept["seconds"] for kept in self.protocols.values())
                                 + sum(kept["seconds"] for parts in self.parts.values() for kept in parts.values()))

    @property
    def kept(self) -> dict[str, dict[str, Any]]:
        """{protocol: its metrics} of the protocols finished before, on the same evaluation."""
        return {name: saved["metrics"] for name, saved in self.protocols.items()}

    def kept_parts(self, protocol: str) -> dict[str, dict[str, Any]]:
        """{part: its metrics} of the parts of `protocol` finished before, on the same evaluation."""
        return {name: saved["metrics"] for name, saved in self.parts.get(protocol, {}).items()}

    def save(self, name: str, metrics: dict[str, Any]) -> None:
        """Record protocol `name`'s metrics, and the seconds since the last save (or since the evaluation began, with
        those a progress resumed carried) with those of its parts, which it replaces."""
        parts = self.parts.pop(name, {})
        self.protocols[name] = {"metrics": metrics,
                                "seconds": self._lap() + sum(saved["seconds"] for saved in parts.values())}
        self._write()

    def save_part(self, protocol: str, part: str, metrics: dict[str, Any]) -> None:
        """Record the metrics of `part` of `protocol` (one of its fine-tunings), then drop that one's progress file."""
        self.parts.setdefault(protocol, {})[part] = {"metrics": metrics, "seconds": self._lap()}
        self._write()
        self._progress_path().unlink(missing_ok=True)

    def parts_of(self, protocol: str) -> SavedParts:
        """What protocol `protocol` keeps of its parts (protocols.py's `parts`)."""
        return SavedParts(self, protocol)

    def progress(self, part: str, start) -> ProgressFile:
        """The progress file of fine-tuning `part`, which starts from the weights of `start` (a module)."""
        key = {**self.key, "part": part, "start_sha256": weights_digest(start)}
        return ProgressFile(self.path.parent, key, every_s=self.progress_every_s, label=self.label,
                            seconds=self._lap_so_far, resumed=self._carry)

    def remove(self) -> None:
        """Delete the file, and any fine-tuning's progress: final.json holds the metrics now."""
        self.path.unlink(missing_ok=True)
        self._progress_path().unlink(missing_ok=True)

    def _progress_path(self) -> Path:
        return self.path.parent / PROGRESS_NAME

    def _lap_so_far(self, now: float | None = None) -> float:
        """Seconds since the last save (or since the evaluation began), with those a progress resumed carried."""
        return self._carried + (time.perf_counter() if now is None else now) - self._clock

    def _lap(self) -> float:
        """_lap_so_far, for the record saved now: the next lap starts."""
        now = time.perf_counter()
        lap, self._clock, self._carried = self._lap_so_far(now), now, 0.0
        return lap

    def _carry(self, seconds: float) -> None:
        """An earlier attempt spent `seconds` in the part this one goes on with (up to its progress's last save)."""
        self._carried += seconds
        self.kept_seconds += seconds

    def _write(self) -> None:
        finds = self.finds_so_far()
        saved = {"key": self.key, "protocols": self.protocols, "parts": self.parts,
                 **({"data_finds": finds} if finds else {})}
        atomic_write_text(self.path, json.dumps(saved, indent=2) + "\n")

    def _read(self) -> dict[str, Any] | None:
        try:
            saved = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.discarded = f"{self.path.name} could not be read ({exc})"
            return None
        protocols = saved.get("protocols") if isinstance(saved, dict) else None
        parts = saved.get("parts", {}) if isinstance(saved, dict) else None
        if (not isinstance(protocols, dict) or not all(map(_is_saved_protocol, protocols.values()))
                or not isinstance(parts, dict) or not all(map(_is_saved_parts, parts.values()))):
            self.discarded = f"{self.path.name} is not a record of finished protocols"
            return None
        return saved


class SavedParts:
    """The parts of one protocol that an interrupted evaluation finished (`kept`), the record of each part this one
    finishes (`save`), and the progress file of the part it runs (`progress`)."""

    def __init__(self, partial: PartialEvaluation, protocol: str):
        self.partial = partial
        self.protocol = protocol

    @property
    def kept(self) -> dict[str, dict[str, Any]]:
        return self.partial.kept_parts(self.protocol)

    def save(self, part: str, metrics: dict[str, Any]) -> None:
        self.partial.save_part(self.protocol, part, metrics)

    def progress(self, part: str, start) -> ProgressFile:
        return self.partial.progress(part, start)

    @contextlib.contextmanager
    def running(self, part: str) -> Iterator[None]:
        """While `part` runs, a stop request is taken (stop_request.py): a fine-tuning answers it at its next epoch
        end (ProgressFile.save); one asked later (its last epoch, its test pass) stops the run once the part is
        saved."""
        stop_request.listen()
        try:
            yield
        finally:
            unanswered = stop_request.stop_listening()
        if unanswered:
            raise stop_request.StoppedInEvaluation(self.partial.key["step"], f"{part} finished and saved")


def _is_saved_protocol(saved: Any) -> bool:
    return (isinstance(saved, dict) and isinstance(saved.get("metrics"), dict)
            and isinstance(saved.get("seconds"), (int, float)))


def _is_saved_parts(saved: Any) -> bool:
    return isinstance(saved, dict) and all(map(_is_saved_protocol, saved.values()))


# A key's fields besides the config, and how a difference in each reads.
_KEY_WORDS = {"step": "step", "weights_sha256": "weights", "device": "device", "part": "part",
              "start_sha256": "starting weights"}


def differences(saved: Any, now: dict[str, Any]) -> str:
    """What differs between a saved key and this evaluation's, in words ("" if nothing)."""
    if not isinstance(saved, dict):
        return "settings (it names none)"
    parts = [words for k, words in _KEY_WORDS.items() if k in now and saved.get(k) != now[k]]
    saved_config = saved.get("config") if isinstance(saved.get("config"), dict) else {}
    config = sorted(k for k in now["config"].keys() | saved_config.keys()
                    if saved_config.get(k) != now["config"].get(k))
    if config:
        parts.append("settings (" + ", ".join(config[:3]) + (f" and {len(config) - 3} more" if len(config) > 3
                                                               else "") + ")")
    return ", ".join(parts)


__all__ = ["PARTIAL_NAME", "PartialEvaluation", "SavedParts", "differences", "evaluation_key", "weights_digest"]
