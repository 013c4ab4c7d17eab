"""Deviations from the paper that follow from a run's settings, whatever its experiment declares: `show` and the
report list them after the declared ones (Experiment.deviations)."""
from __future__ import annotations

from typing import Iterable

from simclr_core.config import RunConfig

LINEAR_ON_FEATURES = (
    "linear evaluation trains its classifier on features of the unaugmented training images, extracted once, not "
    "on the random crop + flip views the paper trained it on (Appendix B.6); eval.linear_augment=true trains on "
    "such views, one forward pass over the training split per epoch")


def setting_deviations(configs: Iterable[RunConfig]) -> tuple[str, ...]:
    """The deviations that `configs` (the runs of a plan) make by their settings."""
    configs = list(configs)
    if any("linear" in cfg.eval.protocols and not cfg.eval.linear_augment for cfg in configs):
        return (LINEAR_ON_FEATURES,)
    return ()
