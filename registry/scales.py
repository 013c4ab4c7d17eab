"""Scales: how much compute one resolved ablation spends, never which runs it has.

The mechanism lives here (`Scale`, `get_scale`, `SCALES`); the scales themselves are experiment content, declared in
experiments/scales.py, cheapest first: smoke (plumbing in seconds), cpu (trends on a 2-core CPU), gpu (one
H100/H200-class GPU), paper (the paper's setting on a cluster), then a user's own (`SCALES` in a file of
$SIMCLR_EXPERIMENTS_DIR). `SCALES` maps each name to its `Scale`, in that order; it imports experiments/scales.py by
name on first use (registry/discover.py), as the registry finds experiments. `python -m registry scales` prints each
one's purpose, what it trains and the estimated hours of its ablations.

Every scale resolves every axis point of an ablation; it changes only the setting the ablation starts
from (ImageNet or CIFAR-10) and how much is trained. A run is resolved in this order:

    cfg = scale.base()                    # the paper's setting for this scale's dataset (experiments/base.py)
    cfg = cfg.with_overrides(scale.defaults)        # cheaper choices an ablation may still vary
    cfg = cfg.with_overrides(experiment.base)       # what the ablation fixes
    cfg = cfg.with_overrides(experiment overrides of the axis point)   # in the paper's units
    cfg = scale.shrink(cfg)               # batch size, epochs, width scaled by factors; compute knobs set
    cfg = cfg.with_overrides(command-line overrides)                    # final units, applied as given

Batch sizes, epochs and widths are multiplied by factors rather than replaced, so an ablation over them
(Figure 7, Figure 9) keeps every point distinct and in the paper's order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from registry.discover import Declared
from simclr_core.config import RunConfig
from simclr_core.validation import ConfigError, require_choice

DEFAULT_SCALE = "cpu"
MIN_BATCH_SIZE = 2


@dataclass(frozen=True)
class Scale:
    name: str
    summary: str
    base: Callable[[], RunConfig]
    # What the scale is for, one line (`summary` says what it trains); `python -m registry scales` prints both.
    purpose: str = ""
    # What the runs are planned for: "cpu" or "gpu" (selects the throughput used by --dry-run estimates).
    hardware: str = "cpu"
    # Set before the experiment's own settings, so an ablation may still vary them (e.g. encoder.name).
    defaults: Mapping[str, Any] = field(default_factory=dict)
    # Multiply every batch size / epoch count (epochs and warm-up) / encoder width after the axes are set.
    batch_size_factor: float = 1.0
    epochs_factor: float = 1.0
    width_factor: float = 1.0
    # Compute knobs no ablation varies, set last (a declaration that varies one of them is refused).
    fixed: Mapping[str, Any] = field(default_factory=dict)
    # Seeds 0..seeds-1 per axis point unless the experiment or `--seeds` says otherwise; two or more let the
    # report tell a ranking from seed noise.
    seeds: int = 1
    # Protocol -> settings set last on a run that evaluates it (fine-tuning, the transformation probe, transfer:
    # the protocols an experiment's metrics add), so that they cost what the scale is for; no ablation varies them.
    protocol_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_choice(f"scale {self.name!r}: hardware", self.hardware, ("cpu", "gpu"))
        for attr in ("batch_size_factor", "epochs_factor", "width_factor"):
            value = getattr(self, attr)
            if not (math.isfinite(value) and value > 0):   # a zero would collapse an axis
                raise ConfigError(f"scale {self.name!r}: {attr}={value!r} must be a positive number")
        if not (isinstance(self.seeds, int) and not isinstance(self.seeds, bool) and self.seeds >= 1):
            raise ConfigError(f"scale {self.name!r}: seeds={self.seeds!r} must be a whole number >= 1")

    @property
    def default_seeds(self) -> tuple[int, ...]:
        return tuple(range(self.seeds))

    def start(self) -> RunConfig:
        """The configuration every experiment at this scale starts from."""
        return self.base().with_overrides(self.defaults)

    def shrink(self, cfg: RunConfig) -> RunConfig:
        """Scale batch size, epochs and width by this scale's factors, then set its fixed compute knobs."""
        overrides: dict[str, Any] = {}
        if self.batch_size_factor != 1.0:
            overrides["batch_size"] = max(MIN_BATCH_SIZE, round(cfg.batch_size * self.batch_size_factor))
        if self.epochs_factor != 1.0:
            overrides["epochs"] = cfg.epochs * self.epochs_factor
            overrides["optim.warmup_epochs"] = cfg.optim.warmup_epochs * self.epochs_factor
        if self.width_factor != 1.0:
            overrides["encoder.width"] = cfg.encoder.width * self.width_factor
        return cfg.with_overrides({**overrides, **self.fixed})

    def fixed_keys(self, protocols: tuple[str, ...] = ()) -> frozenset[str]:
        """The keys this scale sets last: its fixed ones, and those of `protocols`' settings."""
        keys = set(self.fixed)
        for protocol in protocols:
            keys.update(self.protocol_settings.get(protocol, {}))
        return frozenset(k.replace("__", ".") for k in keys)

    def settle_protocols(self, cfg: RunConfig) -> RunConfig:
        """`cfg` with the settings of every protocol it evaluates."""
        overrides: dict[str, Any] = {}
        for protocol in cfg.eval.protocols:
            overrides.update(self.protocol_settings.get(protocol, {}))
        return cfg.with_overrides(overrides) if overrides else cfg


# The declared scales (experiments/scales.py), by name in their order; loaded on first use.
SCALES: Mapping[str, Scale] = Declared("scales", "SCALES", Scale)


def get_scale(name: str) -> Scale:
    return SCALES[require_choice("--scale", name, SCALES)]

