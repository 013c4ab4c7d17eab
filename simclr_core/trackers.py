"""Experiment trackers a run may report to (Accelerate's `log_with`), and whether Accelerate can use each here.

Accelerate only warns when a named tracker is unavailable and then logs nowhere, so a run would finish without
the curves its user asked for; `require_installed` turns that into one error before the run starts. Availability
is Accelerate's own test (`accelerate.utils.is_<tracker>_available`: e.g. tensorboard or tensorboardX, aim below
4.0), so what passes here is what Accelerate will log to."""
from __future__ import annotations

from typing import Iterable

from simclr_core.validation import ConfigError

# Tracker name -> what to install for it.
TRACKER_PACKAGES: dict[str, str] = {
    "tensorboard": "tensorboard",
    "wandb": "wandb",
    "mlflow": "mlflow",
    "comet_ml": "comet_ml",
    "aim": "aim<4",
}
TRACKERS = tuple(TRACKER_PACKAGES)


def is_installed(tracker: str) -> bool:
    from accelerate.utils import imports

    return bool(getattr(imports, f"is_{tracker}_available")())


def require_installed(trackers: Iterable[str]) -> None:
    """Raise ConfigError naming the first tracker Accelerate cannot use here, how to install it and how to drop it."""
    for tracker in trackers:
        if not is_installed(tracker):
            package = TRACKER_PACKAGES[tracker]
            raise ConfigError(
                f"trackers={tracker!r} needs the Python package {package!r}, which is not installed here: "
                f"`pip install '{package}'`, or leave {tracker!r} out of trackers (metrics.jsonl is written either "
                "way)")


__all__ = ["TRACKERS", "TRACKER_PACKAGES", "is_installed", "require_installed"]
