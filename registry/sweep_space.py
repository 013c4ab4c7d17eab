"""What a sweep searches: the `Sweep` declaration and the SWEEPS registry, and one study's plan resolved into
registry runs.

A sweep searches one axis of a declared experiment. Its trials are that experiment's runs at other axis
values, so they share its base, seeds, scale shrinking and run ids: a trial at a declared point *is* the
declared run (`python -m registry run temperature_norm` and `sweep temperature --sampler grid` train each
Table 5 cell once between them), and a trial at a new value is an ordinary run of the same experiment.

The sweeps themselves are experiment content, declared in experiments/sweeps.py (e.g. `temperature`: experiment
temperature_norm, axis loss.temperature, one study per value of loss.normalize); `SWEEPS` maps each name to its
`Sweep` and imports that module by name on first use (registry/discover.py), as the registry finds experiments.
Adding a sweep is one `Sweep(...)` entry there, or in a `SWEEPS` tuple of a file in $SIMCLR_EXPERIMENTS_DIR.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from registry.declare import Experiment, Run, cases
from registry.discover import Declared, get_experiment, where_declared
from registry.run_id import canonical_json, semantic_dict
from registry.scales import Scale, get_scale
from simclr_core.validation import ConfigError, did_you_mean, require_choice

SAMPLERS = ("grid", "tpe")
STUDY_HASH_LENGTH = 8


@dataclass(frozen=True)
class Sweep:
    """One searchable axis of a declared experiment.

    `ranges` maps each value of `split_axis` (None when there is none) to the log-uniform (low, high) range
    TPE searches; each value of the split axis is a study of its own. Other axes of the experiment are held
    at `fixed`. Suggested values are rounded to `significant_digits` before they become config values, so
    that nearby suggestions name the same run and reuse its result.
    """
    name: str
    experiment: str
    axis: str
    ranges: Mapping[Any, tuple[float, float]]
    summary: str
    split_axis: str | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)
    significant_digits: int = 3

    def __post_init__(self) -> None:
        """ConfigError naming the sweep when a range is not a log-uniform one or does not match `split_axis`."""
        where = f"sweep {self.name!r}"
        if not self.ranges:
            raise ConfigError(f"{where}: ranges is empty; e.g. ranges={{None: (0.05, 2.0)}}")
        keyed_by_none = list(self.ranges) == [None]
        if self.split_axis is None and not keyed_by_none:
            raise ConfigError(f"{where}: ranges are keyed by {list(self.ranges)!r}, values of a split axis, but "
                              "split_axis is not set; without one, ranges={None: (low, high)}")
        if self.split_axis is not None and None in self.ranges:
            raise ConfigError(f"{where}: split_axis={self.split_axis!r} needs ranges keyed by its values, e.g. "
                              "{True: (0.01, 10.0), False: (1.0, 1000.0)}, not by None")
        for split, bounds in self.ranges.items():
            if not _log_uniform(bounds):
                raise ConfigError(f"{where}: the range for {split!r} is {bounds!r}; a log-uniform range is "
                                  "(low, high) with 0 < low < high")
        if not (isinstance(self.significant_digits, int) and self.significant_digits >= 1):
            raise ConfigError(f"{where}: significant_digits={self.significant_digits!r} must be a whole number >= 1")

    def splits(self) -> tuple[Any, ...]:
        return tuple(self.ranges)


def _log_uniform(bounds: Any) -> bool:
    """Whether `bounds` is a range TPE can search log-uniformly: (low, high), finite, 0 < low < high."""
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        return False
    numbers = all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds)
    return numbers and 0 < bounds[0] < bounds[1]


# The declared sweeps (experiments/sweeps.py), by name in their order; loaded on first use.
SWEEPS: Mapping[str, Sweep] = Declared("sweeps", "SWEEPS", Sweep)


def get_sweep(name: str) -> Sweep:
    """The sweep called `name`; ConfigError listing the known ones otherwise."""
    if name not in SWEEPS:
        raise ConfigError(f"unknown sweep {name!r}; known sweeps: {', '.join(sorted(SWEEPS))} "
                          f"({where_declared('a sweep')}){did_you_mean(name, SWEEPS)}")
    return SWEEPS[name]


def round_significant(value: float, digits: int) -> float:
    """0.0731234 -> 0.0731 (digits=3); grid values such as 0.05 or 100.0 are unchanged."""
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.{digits - 1}e}")


# ---- one study: a sweep at a scale, for one split value and one sampler ----------------------------------
@dataclass(frozen=True)
class StudyPlan:
    """Everything that identifies one Optuna study and turns its suggestions into registry runs."""
    sweep: Sweep
    experiment: Experiment
    scale: Scale
    split: Any                          # the split axis's value for this study (None without a split axis)
    sampler: str                        # "grid" | "tpe"
    low: float
    high: float
    grid: tuple[float, ...]             # the experiment's declared values of the axis in this split
    metric: str                         # the objective: a numeric key of final.json, maximised
    overrides: Mapping[str, Any] = field(default_factory=dict)

    # ---- naming ------------------------------------------------------------------------------------
    @property
    def study_name(self) -> str:
        """`<experiment>-<hash8>` (STYLE.md); the hash covers everything that makes two studies differ."""
        return f"{self.experiment.name}-{self.study_hash()}"

    def study_hash(self) -> str:
        reference = self.runs_at(self.grid[0] if self.grid else math.sqrt(self.low * self.high))[0]
        identity = {
            "sweep": self.sweep.name, "axis": self.sweep.axis, "split": {str(self.sweep.split_axis): self.split},
            # The resolved config of one trial stands for the base: scale, experiment base, overrides, version.
            "base": semantic_dict(reference.config),
            "seeds": list(self.experiment.seeds_at(self.scale)), "metric": self.metric, "sampler": self.sampler,
            "space": list(self.grid) if self.sampler == "grid" else [self.low, self.high, "log"],
            "significant_digits": self.sweep.significant_digits,
        }
        return hashlib.sha256(canonical_json(identity).encode("ascii")).hexdigest()[:STUDY_HASH_LENGTH]

    @property
    def split_label(self) -> str:
        if self.sweep.split_axis is None:
            return "-"
        return f"{self.sweep.split_axis}={self.split}"

    # ---- trials -> runs ----------------------------------------------------------------------------
    def point(self, value: float) -> dict[str, Any]:
        """The experiment's axis point for a suggested value (declared axis order, so labels match)."""
        value = round_significant(float(value), self.sweep.significant_digits)
        known = {**self.sweep.fixed, self.sweep.axis: value}
        if self.sweep.split_axis is not None:
            known[self.sweep.split_axis] = self.split
        point = {name: known[name] for name in self.experiment.axes.names}
        point.update({k: v for k, v in known.items() if k not in point})
        return point

    def runs_at(self, value: float) -> list[Run]:
        """The registry runs (one per seed) of the trial that suggests `value`; ConfigError if invalid."""
        one_point = replace(self.experiment, axes=cases(self.point(value)))
        return one_point.runs(self.scale, overrides=self.overrides)


def objective_metric(experiment: Experiment, protocols: Sequence[str]) -> str:
    """The experiment's metric when the scale evaluates it, else kNN top-1.

    `linear_top1` needs the "linear" protocol, which the smoke scale leaves out (kNN only); the cpu and
    paper scales run it. A study never mixes metrics: the metric is part of its name's hash.
    """
    protocol = experiment.metric.split("_")[0]
    if protocol in protocols:
        return experiment.metric
    if "knn" in protocols:
        return "knn_top1"
    raise ConfigError(f"experiment {experiment.name!r}: its metric {experiment.metric!r} is not evaluated at this "
                      f"scale and no kNN stands in for it (eval.protocols={tuple(protocols)!r})")


def declared_values(sweep: Sweep, experiment: Experiment, split: Any) -> tuple[float, ...]:
    """The experiment's declared values of the searched axis in `split`, each once, in declared order.

    Where the experiment also varies an axis the sweep holds (`fixed`), its points repeat each value once per
    value of that axis: the grid takes the points at the held values (those trials are declared runs), or, if
    none is declared there, every point, and asks each value once either way."""
    in_split = [p for p in experiment.points() if sweep.split_axis is None or p.get(sweep.split_axis) == split]
    held = [p for p in in_split if all(p.get(key) == value for key, value in sweep.fixed.items())]
    return tuple(dict.fromkeys(float(p[sweep.axis]) for p in held or in_split))


def plan_studies(sweep_name: str, *, scale: str = "cpu", sampler: str = "grid", splits: Sequence[Any] | None = None,
                 overrides: Mapping[str, Any] | None = None) -> list[StudyPlan]:
    """One StudyPlan per split value; every check that can fail happens here, before anything runs."""
    sweep = get_sweep(sweep_name)
    require_choice("--sampler", sampler, SAMPLERS)
    scale_obj = get_scale(scale)
    experiment = get_experiment(sweep.experiment)
    axes = experiment.axes.names
    named = [("axis", sweep.axis), ("split_axis", sweep.split_axis), *(("fixed", key) for key in sweep.fixed)]
    for what, key in named:
        if key is not None and key not in axes:
            raise ConfigError(f"sweep {sweep.name!r}: {what}={key!r} is not an axis of experiment {experiment.name!r}, "
                              f"whose axes are {', '.join(axes)} (a sweep searches an axis of its experiment: add "
                              f"{key!r} to the experiment's axes to search it){did_you_mean(key, axes)}")
    unset = [name for name in experiment.axes.names if name not in {sweep.axis, sweep.split_axis, *sweep.fixed}]
    if unset:
        raise ConfigError(f"sweep {sweep.name!r}: experiment {experiment.name!r} also varies {unset}; the sweep "
                          f"must search it (axis), split by it (split_axis) or hold it (fixed={{{unset[0]!r}: ...}})")
    overrides = dict(overrides or {})
    searched = {sweep.axis} | ({sweep.split_axis} if sweep.split_axis else set())
    clash = sorted(k for k in overrides if k.replace("__", ".") in searched)
    if clash:
        raise ConfigError(f"override(s) {clash} would fix what sweep {sweep.name!r} searches ({sorted(searched)})")
    chosen = sweep.splits() if splits is None else tuple(splits)
    for value in chosen:
        require_choice(f"sweep {sweep.name!r}: {sweep.split_axis or 'split'}", value, sweep.splits())
    plans = []
    for split in chosen:
        low, high = sweep.ranges[split]
        grid = declared_values(sweep, experiment, split)
        if sampler == "grid" and not grid:
            raise ConfigError(f"sweep {sweep.name!r}: experiment {experiment.name!r} declares no "
                              f"{sweep.axis} values for {sweep.split_axis}={split!r}; use --sampler tpe")
        plan = StudyPlan(sweep, experiment, scale_obj, split, sampler, low, high, grid, metric="", overrides=overrides)
        probe = plan.runs_at(grid[0] if grid else low)[0]           # resolves and validates trials now
        if sampler == "tpe":
            plan.runs_at(low), plan.runs_at(high)
        plans.append(replace(plan, metric=objective_metric(experiment, probe.config.eval.protocols)))
    return plans
