"""Experiment declarations: a base, the axes that vary, the paper artefact they reproduce, and their runs.

    EXPERIMENT = Experiment(
        name="head_type", artefact="fig8", title="...",
        base={"optim.lr_scaling": "linear"},                  # what the ablation fixes
        axes=grid(head__kind=("linear", "nonlinear"), head__out_dim=(32, 64, 128)),
        metric="linear_top1", published=Published(...), deviations=("...",),
    )

An experiment of one's own (no paper numbers) leaves out `published` (and `artefact`, which then defaults to
its name); its report shows our mean +/- std per cell and no paper column. `metrics=` names further final.json
keys each run reports (e.g. kNN, linear, fine-tuning at 1% and 10%); `metric` is the one that ranks the cells.
An axis whose keys are all `eval.*` is an evaluation-only axis: its points share one pretraining, which the
registry trains once and reuses (registry/pretraining.py).

Axes are data. `grid` gives the Cartesian product, `zip_axes` paired lists, `cases` an explicit list of
points; `+` concatenates axes with the same names. Axis names are dotted config keys ("head.kind", or
"head__kind" in keyword form) unless the declaration maps its points to config overrides itself
(`overrides=`), for axes such as Figure 5's (first, second) transformation pair. Unknown config keys are
refused when the declaration is made, not when it runs.

`Experiment.runs(scale)` resolves the declaration into fully specified, validated `Run`s with stable ids
(see registry/scales.py for the resolution order and registry/run_id.py for the ids).
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Mapping, Sequence

from registry.run_id import config_hash, make_run_id, never_in_id
from registry.scales import DEFAULT_SCALE, SCALES, Scale, get_scale
from simclr_core.config import RunConfig
from simclr_core.metric_names import protocol_for_metric, require_metric
from simclr_core.validation import ConfigError

Point = dict[str, Any]
# Protocols a scale may leave out for a stand-in (smoke: kNN stands in for linear evaluation); an experiment's metric
# never adds them. kNN, one pass over the features, is added wherever a metric needs it (the paper scale runs only
# linear evaluation).
STAND_IN_PROTOCOLS = frozenset({"linear"})
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


# ---- axes ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Axes:
    """Named axes and the points they take, in declaration order."""
    names: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]

    def __post_init__(self) -> None:
        if not self.names:
            raise ConfigError("axes need at least one name")
        if len(set(self.names)) != len(self.names):
            raise ConfigError(f"axis names repeat: {self.names}")
        for row in self.values:
            if len(row) != len(self.names):
                raise ConfigError(f"axis point {row!r} does not give one value per axis {self.names}")
        seen = set()
        for row in self.values:
            key = repr(row)
            if key in seen:
                raise ConfigError(f"axis point {dict(zip(self.names, row))} is declared twice")
            seen.add(key)

    def __iter__(self) -> Iterator[Point]:
        return (dict(zip(self.names, row)) for row in self.values)

    def __len__(self) -> int:
        return len(self.values)

    def __add__(self, other: "Axes") -> "Axes":
        if other.names != self.names:
            raise ConfigError(f"cannot concatenate axes {self.names} and {other.names}: names differ")
        return Axes(self.names, self.values + other.values)


def _axis_name(name: str) -> str:
    return name.replace("__", ".")


def _as_values(name: str, values: Any) -> tuple[Any, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ConfigError(f"axis {name!r} needs a non-empty list of values, got {values!r}")
    return tuple(values)


def grid(**axes: Sequence[Any]) -> Axes:
    """Every combination of the axes' values (the first axis varies slowest)."""
    names = tuple(_axis_name(n) for n in axes)
    lists = [_as_values(n, v) for n, v in zip(names, axes.values())]
    return Axes(names, tuple(itertools.product(*lists)))


def zip_axes(**axes: Sequence[Any]) -> Axes:
    """Paired values: the i-th point takes the i-th value of every axis (all lists equally long)."""
    names = tuple(_axis_name(n) for n in axes)
    lists = [_as_values(n, v) for n, v in zip(names, axes.values())]
    if len({len(v) for v in lists}) != 1:
        raise ConfigError("zip_axes needs equally long value lists; got "
                          + ", ".join(f"{n}: {len(v)}" for n, v in zip(names, lists)))
    return Axes(names, tuple(zip(*lists)))


def cases(*points: Mapping[str, Any]) -> Axes:
    """An explicit list of points, for irregular designs; every point names the same axes."""
    if not points:
        raise ConfigError("cases() needs at least one point")
    names = tuple(_axis_name(n) for n in points[0])
    for p in points:
        if tuple(_axis_name(n) for n in p) != names:
            raise ConfigError(f"case {dict(p)} does not name the axes {names} (in that order)")
    return Axes(names, tuple(tuple(p.values()) for p in points))


# ---- published numbers ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Published:
    """Where an experiment's published numbers are: a CSV of the paper's cells, one row per cell.

    A cell is (axis point, metric). `columns` maps a CSV column to the axis it records; `values` translates an
    axis's values into that column's text where they differ ({"width": {1: "ResNet-50", 2: "ResNet-50 (2x)"}});
    `where` fixes other columns (a value or a tuple of accepted values). `metrics` maps each of the experiment's
    metrics that the paper reports to the further `where` conditions of its rows (Table 3: {"transform_color_h":
    {"what_to_predict": "color vs grayscale", "representation": "h"}}); without it only the experiment's
    `metric` has published rows, those `where` selects. Each cell matches at most one row
    (registry/published.py); a cell matching none is one the paper does not report.
    """
    file: str
    columns: Mapping[str, str] = field(default_factory=dict)
    where: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)
    values: Mapping[str, Mapping[Any, str]] = field(default_factory=dict)
    metrics: Mapping[str, Mapping[str, str | tuple[str, ...]]] = field(default_factory=dict)


# ---- experiments and their runs ---------------------------------------------------------------------
def _why_one_config(first: Point, second: Point, overrides: Mapping[str, Any], scale: Scale) -> str:
    """Why two axis points resolved to one config: the keys they differ in never enter a run id, an override sets
    one of them, or the scale's shrinking maps their values to one."""
    differ = [key for key in second if first.get(key) != second[key]]
    if differ and all(never_in_id(key) for key in differ):
        return (f"they differ only in {', '.join(differ)}, which no run id holds (how a run is carried out, not what "
                "it trains: registry/run_id.py)")
    fixed = sorted(key for key in overrides if key.replace("__", ".") in differ)
    if fixed:
        return f"the override {', '.join(f'{k}={overrides[k]}' for k in fixed)} sets what the axis varies"
    return f"scale {scale.name!r} shrinks {', '.join(differ)} of both to one value"


def check_seeds(seeds: Sequence[Any], what: str) -> tuple[int, ...]:
    """`seeds` as a tuple of distinct non-negative integers, else a ConfigError naming `what`."""
    seeds = tuple(seeds)
    bad = [s for s in seeds if not isinstance(s, int) or isinstance(s, bool) or s < 0]
    if not seeds or bad or len(set(seeds)) != len(seeds):
        problem = (f"{bad[0]!r} is not a non-negative integer" if bad else "none given" if not seeds
                   else "a seed repeats")
        raise ConfigError(f"{what}={list(seeds)!r}: {problem}; give distinct integers >= 0, e.g. 0 1 2")
    return seeds


@dataclass(frozen=True)
class Run:
    """One fully specified run: its id, the axis point it stands for (paper units) and its config.

    `overrides` are the command line's key=value settings the run was resolved with (already in `config`):
    kept so that the commands printed about the run (show it, train it again) name the same runs.
    """
    run_id: str
    experiment: str
    scale: str
    point: Mapping[str, Any]
    config: RunConfig
    overrides: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.run_id.partition("/")[2].rpartition("-")[0]

    @property
    def hash(self) -> str:
        return self.run_id.rpartition("-")[2]


@dataclass(frozen=True, kw_only=True)
class Experiment:
    name: str
    title: str
    axes: Axes
    # The metric that ranks the cells (a key of final.json, e.g. "linear_top1"): the paper's, for its artefacts.
    metric: str
    # Further final.json keys each run reports and the report shows beside `metric` (e.g. "knn_top1").
    metrics: tuple[str, ...] = ()
    # The paper's numbers; None for an experiment of one's own (its report has no paper column).
    published: Published | None = None
    # Key of the artefact reports/ renders (fig5, tab1, ...); default: the experiment's name.
    artefact: str = ""
    # How our setting departs from the paper's, one line each; echoed under every rendered table (required
    # with `published`).
    deviations: tuple[str, ...] = ()
    # Dotted config overrides this ablation fixes on top of the scale's default setting.
    base: Mapping[str, Any] = field(default_factory=dict)
    # The paper's setting this ablation starts from at every scale (experiments/base.py, e.g. cifar10_base for
    # Appendix B.9); None: the scale's own (ImageNet at paper scale, CIFAR-10 below).
    setting: Callable[[], RunConfig] | None = None
    # The scales `setting` applies at; None: every scale. The others start from the scale's own setting.
    setting_scales: tuple[str, ...] | None = None
    # Axis point -> dotted config overrides; None: the axis names are config keys, the values their values.
    overrides: Callable[[Point], Mapping[str, Any]] | None = None
    # None: the scale's default seeds (experiments/scales.py); `registry run --seeds` overrides either.
    seeds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(f"experiment name {self.name!r} must be lower_snake_case")
        if not self.artefact:
            object.__setattr__(self, "artefact", self.name)
        if not isinstance(self.metric, str) or not self.metric:
            raise ConfigError(f"experiment {self.name!r} has no metric: name the final.json key that ranks its "
                              "cells, e.g. metric='linear_top1' (or 'knn_top1', 'finetune_top1_10pct')")
        if isinstance(self.metrics, str) or not all(isinstance(m, str) and m for m in self.metrics):
            raise ConfigError(f"experiment {self.name!r}: metrics={self.metrics!r} must be a tuple of final.json "
                              "keys, e.g. ('knn_top1', 'linear_top1')")
        for field_name, metric in (("metric", self.metric), *(("metrics", m) for m in self.metrics)):
            require_metric(f"experiment {self.name!r}: {field_name}", metric)
        if not self.title:
            raise ConfigError(f"experiment {self.name!r}: title is required")
        if isinstance(self.deviations, str) or not all(isinstance(d, str) and d for d in self.deviations) or (
                self.published is not None and not self.deviations):
            raise ConfigError(f"experiment {self.name!r}: deviations must be a tuple of sentences, non-empty when "
                              "the experiment reproduces published numbers")
        if self.seeds is not None:
            check_seeds(self.seeds, f"experiment {self.name!r}: seeds")
        if self.published is not None:
            self._check_published(self.published)
        # Unknown keys fail here, at import time, naming the valid ones.
        probe = RunConfig().with_overrides(self.base)
        for point in self.axes:
            probe.with_overrides(self.config_overrides(point))
        if "optim.lr_scaling" not in self.varied_keys():
            raise ConfigError(f"experiment {self.name!r} must state its learning-rate scaling "
                              "(optim.lr_scaling: 'linear' or 'sqrt') in base or on an axis")

    def _check_published(self, spec: Published) -> None:
        axes = list(self.axes.names)
        unknown_axes = sorted({*spec.columns.values(), *spec.values} - set(axes))
        if unknown_axes:
            raise ConfigError(f"experiment {self.name!r}: published names axes {unknown_axes}; the axes are {axes}")
        unknown_metrics = sorted(set(spec.metrics) - set(self.all_metrics))
        if unknown_metrics:
            raise ConfigError(f"experiment {self.name!r}: published.metrics names {unknown_metrics}, which are not "
                              f"among the experiment's metrics {list(self.all_metrics)}")

    # ---- metrics -----------------------------------------------------------------------------------
    @property
    def all_metrics(self) -> tuple[str, ...]:
        """`metric` first, then the further `metrics`, each once."""
        return tuple(dict.fromkeys((self.metric, *self.metrics)))

    @property
    def published_metrics(self) -> tuple[str, ...]:
        """The metrics the paper reports cells of (none for an experiment of one's own)."""
        if self.published is None:
            return ()
        return tuple(m for m in self.all_metrics if m in self.published.metrics) if self.published.metrics \
            else (self.metric,)

    # ---- points and overrides -----------------------------------------------------------------------
    def points(self) -> list[Point]:
        return list(self.axes)

    def config_overrides(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """The dotted config overrides of one axis point (before the scale shrinks it)."""
        return dict(point if self.overrides is None else self.overrides(dict(point)))

    def varied_keys(self) -> frozenset[str]:
        """Config keys this experiment sets, fixed or per point."""
        keys = {k.replace("__", ".") for k in self.base}
        for point in self.axes:
            keys.update(k.replace("__", ".") for k in self.config_overrides(point))
        return frozenset(keys)

    def evaluation_only_axes(self) -> tuple[str, ...]:
        """Axes whose points differ only in `eval.*` keys: changing one of them, the others held, changes no
        pretraining key, so such points share one pretraining."""
        found = []
        for axis in self.axes.names:
            changed: set[str] = set()
            points = self.points()
            for a in points:
                for b in points:
                    if all(a[n] == b[n] for n in self.axes.names if n != axis) and a[axis] != b[axis]:
                        oa, ob = self.config_overrides(a), self.config_overrides(b)
                        changed.update(k.replace("__", ".") for k in {*oa, *ob} if oa.get(k) != ob.get(k))
            if changed and all(k.startswith("eval.") for k in changed):
                found.append(axis)
        return tuple(found)

    # ---- resolution --------------------------------------------------------------------------------
    def seeds_at(self, scale: str | Scale) -> tuple[int, ...]:
        """The seeds each axis point runs with at `scale` when the command line names none."""
        scale = scale if isinstance(scale, Scale) else get_scale(scale)
        return tuple(self.seeds) if self.seeds is not None else scale.default_seeds

    def resolve(self, scale: str | Scale, point: Mapping[str, Any], seed: int,
                overrides: Mapping[str, Any] | None = None) -> RunConfig:
        """The config of one (axis point, seed) at `scale`, before `validate()` (which imports the training code
        and with it torch: reports resolve declared configs without it). Order: registry/scales.py."""
        scale = scale if isinstance(scale, Scale) else get_scale(scale)
        unknown = [name for name in self.setting_scales or () if name not in SCALES]
        if unknown:
            raise ConfigError(f"experiment {self.name!r}: setting_scales names {unknown}, not declared scales; "
                              f"choose from {', '.join(SCALES)}")
        if self.setting is None or (self.setting_scales is not None and scale.name not in self.setting_scales):
            start = scale.start()
        else:
            start = self.setting().with_overrides(scale.defaults)
        cfg = scale.shrink(start.with_overrides(self.base).with_overrides(self.config_overrides(point)))
        cfg = scale.settle_protocols(self._with_metric_protocols(cfg))
        if overrides:
            cfg = cfg.with_overrides(overrides)   # unknown keys raise here, naming the valid ones
        return replace(cfg, seed=seed)

    def metric_protocols(self) -> tuple[str, ...]:
        """The protocols this experiment's metrics come from, in order."""
        return tuple(dict.fromkeys(p for p in map(protocol_for_metric, self.all_metrics) if p is not None))

    def _with_metric_protocols(self, cfg: RunConfig) -> RunConfig:
        """`cfg` evaluating every protocol the experiment's metrics come from. Linear evaluation stays the scale's
        choice (smoke runs kNN only, standing in for it: reports/build.py); the others (kNN, fine-tuning, the
        transformation probe, transfer) exist for the experiments that name their metrics."""
        needed = [p for p in self.metric_protocols() if p not in STAND_IN_PROTOCOLS and p not in cfg.eval.protocols]
        if not needed:
            return cfg
        return cfg.with_overrides({"eval.protocols": tuple(cfg.eval.protocols) + tuple(dict.fromkeys(needed))})

    def runs(self, scale: str | Scale = DEFAULT_SCALE, overrides: Mapping[str, Any] | None = None,
             seeds: Sequence[int] | None = None) -> list[Run]:
        """Every (axis point x seed) at `scale` as a validated Run; ConfigError before anything runs.

        `overrides` are dotted keys applied last, in final units (after the scale's shrinking); an override
        of "seed" replaces the declared seeds, as does `seeds`.
        """
        scale = scale if isinstance(scale, Scale) else get_scale(scale)
        given = dict(overrides or {})
        overrides = dict(given)
        if "seed" in overrides:
            seeds = (RunConfig().with_overrides({"seed": overrides.pop("seed")}).seed,)
        clash = sorted(self.varied_keys() & scale.fixed_keys(self.metric_protocols()))
        if clash:
            raise ConfigError(f"experiment {self.name!r} varies {clash}, which scale {scale.name!r} fixes; "
                              "a scale may shrink compute but never the structure of an ablation")
        seeds = self.seeds_at(scale) if seeds is None else check_seeds(seeds, "--seeds")
        runs: list[Run] = []
        by_hash: dict[str, Point] = {}
        for point in self.points():
            for seed in seeds:
                try:
                    seeded = self.resolve(scale, point, seed, overrides).validate()
                except ConfigError as exc:
                    raise ConfigError(f"{self.name} at scale {scale.name}, point {point}: {exc}") from None
                digest = config_hash(seeded)
                if digest in by_hash:
                    raise ConfigError(
                        f"experiment {self.name!r} at scale {scale.name!r}: points {by_hash[digest]} and {point} "
                        f"(seed {seed}) resolve to the same config, so to one run id: "
                        f"{_why_one_config(by_hash[digest], point, given, scale)}")
                by_hash[digest] = point
                run_id = make_run_id(self.name, point, seeded)
                runs.append(Run(run_id, self.name, scale.name, dict(point), seeded, given))
        return runs
