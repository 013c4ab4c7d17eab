"""Experiment trackers a run may report to (Accelerate's `log_with`), and whether each one's package is installed.

Accelerate only warns when a named tracker's package is missing and then logs nowhere, so a run would finish
without the curves its user asked for; `require_installed` turns that into one error before the run starts."""
from __future__ import annotations

import importlib.util
from typing import Iterable

from simclr_core.validation import ConfigError

# Tracker name -> the Python modules that provide it (any one will do), the first being the package to install.
TRACKER_MODULES: dict[str, tuple[str, ...]] = {
    "tensorboard": ("tensorboard", "tensorboardX"),
    "wandb": ("wandb",),
    "mlflow": ("mlflow",),
    "comet_ml": ("comet_ml",),
    "aim": ("aim",),
}
TRACKERS = tuple(TRACKER_MODULES)


def is_installed(tracker: str) -> bool:
    return any(importlib.util.find_spec(module) is not None for module in TRACKER_MODULES[tracker])


def require_installed(trackers: Iterable[str]) -> None:
    """Raise ConfigError naming the first tracker whose package is missing, how to install it and how to drop it."""
    for tracker in trackers:
        if not is_installed(tracker):
            package = TRACKER_MODULES[tracker][0]
            raise ConfigError(
                f"trackers={tracker!r} needs the Python package {package!r}, which is not installed here: "
                f"`pip install {package}`, or leave {tracker!r} out of trackers (metrics.jsonl is written either way)")


__all__ = ["TRACKERS", "TRACKER_MODULES", "is_installed", "require_installed"]
