"""The sweeps: which axis of a declared experiment `python -m registry sweep NAME` searches, and over what range.

    SWEEPS temperature: experiment temperature_norm, axis loss.temperature, one study per value of
                        loss.normalize; grid = the experiment's declared (Table 5) temperatures;
                        TPE searches log-uniformly in ranges[normalize]

What a field of `Sweep` means, and how a study's trials become registry runs, is in registry/sweep_space.py,
which finds this module by name (`registry.sweep_space.SWEEPS`, loaded on first use).

Adding a sweep is one `Sweep(...)` entry below, or, outside the package, in a `SWEEPS` tuple of a file in
$SIMCLR_EXPERIMENTS_DIR.
"""
from __future__ import annotations

from registry.sweep_space import Sweep

SWEEPS = (
    Sweep(
        name="temperature",
        experiment="temperature_norm",
        axis="loss.temperature",
        split_axis="loss.normalize",
        # With l2 normalisation the logits are cosine similarities / temperature, in [-1/t, 1/t]: 0.01
        # makes them span +-100 (near one-hot), 10 makes the distribution almost uniform. Without it the
        # logits are raw dot products of 128-d projections, so the useful temperatures are larger:
        # Table 5 tries 10 and 100; the range adds a decade on either side.
        ranges={True: (0.01, 10.0), False: (1.0, 1000.0)},
        summary="NT-Xent temperature with / without l2 normalisation (Table 5's grid; TPE beyond it)",
    ),
)
