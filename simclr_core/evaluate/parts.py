"""The parts of a protocol that runs several fine-tunings (finetune: per label fraction and start; transfer: linear,
finetune, scratch), each kept on its own as it ends, so that a rerun after a kill runs only those left (train():
partial_evaluation.py keeps them in evaluation-partial.json, and each fine-tuning's progress in finetune_progress.py's
file)."""
from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager, Mapping, Protocol

from torch import nn

from simclr_core.evaluate.finetune import Progress


class Parts(Protocol):
    """The parts of one protocol: those finished before (`kept`: {part: metrics}), the record of each as it ends
    (`save`), where fine-tuning `part`, which starts from the module `start`, keeps its progress (`progress`), and
    what surrounds a part that runs (`running(part)`: train() answers stop requests there)."""

    @property
    def kept(self) -> Mapping[str, dict[str, Any]]: ...

    def save(self, part: str, metrics: dict[str, Any]) -> None: ...

    def progress(self, part: str, start: nn.Module) -> Progress | None: ...

    def running(self, part: str) -> ContextManager[None]: ...


class Unsaved:
    """Parts that nothing keeps: each runs, from the start."""
    kept: Mapping[str, dict[str, Any]] = {}

    def save(self, part: str, metrics: dict[str, Any]) -> None:
        pass

    def progress(self, part: str, start: nn.Module) -> None:
        return None

    def running(self, part: str) -> ContextManager[None]:
        return contextlib.nullcontext()


def run_part(parts: Parts, part: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The metrics of `part`: those kept, else run() saved as they come."""
    if part in parts.kept:
        return parts.kept[part]
    with parts.running(part):
        metrics = run()
        parts.save(part, metrics)
    return metrics


__all__ = ["Parts", "Unsaved", "run_part"]
