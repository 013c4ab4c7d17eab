"""How far a fine-tuning of the final evaluation got, kept so that a run killed part way goes on from there.

At paper scale one fine-tuning (eval protocol `finetune`: a label fraction from the pretrained encoder or from
scratch; `transfer`: a whole transfer dataset) may outlast a SLURM job, which would then be requeued forever.
`ProgressFile` is the `progress` that train() gives finetune_eval (evaluate/finetune.py): at an epoch end, at most
every SAVE_EVERY_S seconds, it replaces `finetune-progress.pt` in the run folder (atomic_files.py) with the
fine-tuning's state, and the next attempt of the same fine-tuning resumes from it, with the numbers of one that never
stopped. The file is deleted once the fine-tuning's metrics are in evaluation-partial.json (partial_evaluation.py).

It is reused only for the same fine-tuning of the same evaluation: its key is evaluation-partial.json's (the weights
evaluated, the step, the config, the device) plus the fine-tuning's name and a digest of the weights it starts from.
A file saved for another, or one that cannot be read, is set aside with one line saying why, and the fine-tuning
starts over (its next save replaces the file).

The file also keeps the seconds the fine-tuning has taken up to the save, in this attempt and the earlier ones it
went on from (`seconds`, which partial_evaluation.py measures): the attempt that goes on from it counts them
(`resumed`), so that final.json's eval_seconds loses only what a killed attempt ran after its last save. A file
saved before it kept them carries none; one set aside carries nothing.

A stop request (stop_request.py: a SLURM job's time-limit warning) makes the next epoch end's save due, and the
fine-tuning stops once it is saved (StoppedInEvaluation): the requeued job goes on from there.

Nothing here imports torch at import time: the registry names the file (--redo moves it aside) without loading it.
"""
from __future__ import annotations

import pickle
import sys
import time
from pathlib import Path
from typing import Any, Callable

from simclr_core import stop_request

PROGRESS_NAME = "finetune-progress.pt"
# Seconds between two saves of a fine-tuning's state (at the first epoch end after them): a ResNet-50's state with
# its momentum is ~200 MB, a few seconds to write on a slow disk, and a kill loses at most this much fine-tuning.
SAVE_EVERY_S = 300.0


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class ProgressFile:
    """`finetune-progress.pt` in `run_dir`, for the fine-tuning `key` names (key["part"]: its name, in words).
    `every_s`: the least seconds between two saves (and between the start and the first); `say` prints a line;
    `seconds()`: the seconds the fine-tuning has taken so far, saved with its state; `resumed(seconds)` is told the
    seconds of the state `load` gives back."""

    def __init__(self, run_dir: str | Path, key: dict[str, Any], *, every_s: float = SAVE_EVERY_S,
                 label: str = "evaluate", say: Callable[[str], None] = _say,
                 seconds: Callable[[], float] = lambda: 0.0, resumed: Callable[[float], None] = lambda seconds: None):
        self.path = Path(run_dir) / PROGRESS_NAME
        self.key = key
        self.every_s = every_s
        self.label = label
        self.say = say
        self.seconds = seconds
        self.resumed = resumed
        self._last_save = time.monotonic()

    def load(self) -> dict[str, Any] | None:
        """The state saved for this fine-tuning, or None (none saved, or one this fine-tuning cannot use: a line
        says why)."""
        from simclr_core.partial_evaluation import differences

        saved = self._read()
        if saved is None:
            return None
        changed = differences(saved.get("key"), self.key)
        if changed:
            self.say(f"{self.label}: {self.path.name} was saved for other {changed}; {self._starts_over()}")
            return None
        state = saved["state"]
        self.say(f"{self.label}: {self.key['part']} goes on after epoch {state['epochs_done']}, where an earlier "
                 f"attempt saved it ({self.path.name})")
        self.resumed(self._seconds_in(saved))
        return state

    def due(self) -> bool:
        return stop_request.requested() or time.monotonic() - self._last_save >= self.every_s

    def save(self, state: dict[str, Any]) -> None:
        """Replace the file with `state`; then, where a stop was requested, stop the run (StoppedInEvaluation)."""
        from simclr_core.checkpoint import atomic_torch_save

        atomic_torch_save(self.path, {"key": self.key, "state": state, "seconds": float(self.seconds())})
        self._last_save = time.monotonic()
        if stop_request.requested():
            raise stop_request.StoppedInEvaluation(
                self.key["step"], f"{self.key['part']}'s progress saved after epoch {state['epochs_done']}")

    def remove(self) -> None:
        """Delete the file: the fine-tuning's metrics are saved."""
        self.path.unlink(missing_ok=True)

    def _read(self) -> dict[str, Any] | None:
        import torch

        if not self.path.exists():
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, OSError, ValueError, KeyError, ImportError, AttributeError,
                pickle.UnpicklingError) as exc:    # truncated, damaged, not a torch file: the fine-tuning starts over
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            self.say(f"{self.label}: {self.path.name} could not be read ({reason}); {self._starts_over()}")
            return None
        if not (isinstance(saved, dict) and isinstance(saved.get("state"), dict)
                and isinstance(saved["state"].get("epochs_done"), int)):
            self.say(f"{self.label}: {self.path.name} is not a saved training state; {self._starts_over()}")
            return None
        return saved

    def _starts_over(self) -> str:
        # In words that hold for a fine-tuning and for linear evaluation on augmented views (part "linear") alike.
        return f"{self.key['part']} starts over from its first epoch"

    def _seconds_in(self, saved: dict[str, Any]) -> float:
        """The seconds a usable file carries: none where it was saved before files kept them."""
        seconds = saved.get("seconds", 0.0)
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and 0 <= seconds < float("inf"):
            return float(seconds)
        self.say(f"{self.label}: {self.path.name} gives its seconds so far as {seconds!r}, not a number of seconds; "
                 f"eval_seconds counts none of {self.key['part']}'s before epoch {saved['state']['epochs_done']}")
        return 0.0


__all__ = ["PROGRESS_NAME", "ProgressFile", "SAVE_EVERY_S"]
