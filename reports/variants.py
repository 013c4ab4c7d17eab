"""Which runs may be averaged: only runs whose configs differ in nothing but the seed.

A run's *variant* is how its semantic config (registry.run_id.semantic_dict, seed left out) differs from the
config its experiment's declaration resolves to for the same axis point at the same scale today: () when it
is the declared config; e.g. (("max_steps", "2"),) for a run given `max_steps=2` on the command line, or a
different config_version for a run written by older code. Two runs of one cell with the same variant have the
same config but for the seed, so a section may average them.

Per experiment and scale a report shows one variant: the declared one if any run has it, else the most common
(ties: the one with the most recently written run). Every other run is left out, with why. A report asked for with
`key=value` overrides (as `run` took them) shows instead the runs whose config is the declared one with those
overrides applied, and no other variant.

The declared config comes from `Experiment.resolve`, as in `Experiment.runs` but without its final
`validate()`, which imports the training code and with it torch.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

from registry.declare import Experiment
from registry.discover import get_experiment
from registry.overrides import override_args
from registry.run_id import canonical_json, semantic_dict
from registry.scales import SCALES
from reports.compare import canon
from simclr_core.config import RunConfig
from simclr_core.validation import ConfigError

DECLARED: tuple = ()


@dataclass(frozen=True)
class Variant:
    """How one run's config differs from its declared config: (key, stored, declared) per differing key, or
    the reason it cannot be compared at all."""
    differences: tuple[tuple[str, str, str], ...] = ()
    problem: str = ""
    # Whether the run's config is the one a report was asked for: the declared config, with the report's overrides.
    asked: bool = False
    # The differing keys that the run's own command-line overrides (config.json's "overrides") do not explain: today's
    # declaration with those overrides still differs there, so the declaration (or scale) was another when the run
    # was made. Empty where the overrides explain every difference or were not recorded.
    declared_then: frozenset[str] = frozenset()

    @property
    def key(self) -> tuple:
        return ("problem", self.problem) if self.problem else tuple((k, s) for k, s, _ in self.differences)

    @property
    def declared(self) -> bool:
        return not self.problem and not self.differences

    def describe(self) -> str:
        if self.problem:
            return self.problem
        if not self.differences:
            return "the declared config"
        parts, others, earlier = [], [], []
        for key, stored, declared in self.differences:
            if key == "config_version":
                parts.append(f"another config_version ({stored}; declared {declared})")
            elif key in self.declared_then:
                earlier.append(f"{key}={stored} (declared today: {declared})")
            elif key == "max_steps":
                parts.append(f"max_steps={stored} override")
            else:
                others.append(f"{key}={stored}")
        if others:
            parts.append("other overrides: " + ", ".join(others))
        if earlier:
            parts.append("made under an earlier declaration, not by an override: " + ", ".join(earlier))
        return "; ".join(parts)


# ---- the declared config ---------------------------------------------------------------------------------
def declared_config(experiment: Experiment, scale: str, point: Mapping[str, Any], seed: int,
                    overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """What `experiment.runs(scale, overrides)` resolves `point` to, unvalidated (no torch)."""
    return experiment.resolve(SCALES[scale], point, seed, overrides)


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(map(str, value)) + ")"
    return str(value)


def _point_of(row: Mapping[str, Any], experiment: Experiment) -> dict[str, Any]:
    """The run's axis point with the declaration's own types (pandas turns 128 into 128.0 beside a gap)."""
    names = experiment.axes.names
    values = {n: row.get(f"axis.{n}") for n in names}
    for point in experiment.points():
        if all(canon(point[n]) == canon(values[n]) for n in names):
            return dict(point)
    point = {}      # an undeclared point (a sweep trial): integral axes get ints back
    for n, value in values.items():
        integral = all(isinstance(p[n], int) and not isinstance(p[n], bool) for p in experiment.points())
        point[n] = int(value) if integral and isinstance(value, float) and value.is_integer() else value
    return point


def variant_of(row: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> Variant:
    """The variant of one run, from a row of the results table (registry.store.load_results); `asked` when its
    config is the declared one with `overrides` applied (as `run` applies them)."""
    name, scale = row.get("experiment"), row.get("scale")
    try:
        experiment = get_experiment(name)
    except ConfigError:
        return Variant(problem=f"experiment {name!r} is not declared today (experiments/*.py, "
                               "$SIMCLR_EXPERIMENTS_DIR): no declared config to check its config against")
    if scale not in SCALES:
        return Variant(problem=f"scale {scale!r} is not one of {', '.join(SCALES)}")
    if not isinstance(row.get("config_json"), str):
        return Variant(problem="its stored config is not in the results table (config_json)")
    try:
        stored = RunConfig.from_dict(json.loads(row["config_json"]))
    except (ConfigError, ValueError, TypeError) as exc:
        return Variant(problem=f"its config.json is not readable by this code ({exc})")
    try:
        declared = declared_config(experiment, scale, _point_of(row, experiment), stored.seed)
    except (ConfigError, ValueError, TypeError, KeyError) as exc:
        return Variant(problem=f"its axis point does not resolve under today's declaration ({exc})")
    differences = config_differences(stored, declared)
    declared_then = _declared_then(experiment, scale, _point_of(row, experiment), stored,
                                   row.get("overrides_json")) if differences else frozenset()
    if not overrides:
        return Variant(differences, asked=not differences, declared_then=declared_then)
    try:
        asked_config = declared_config(experiment, scale, _point_of(row, experiment), stored.seed, overrides)
    except (ConfigError, ValueError, TypeError, KeyError) as exc:
        return Variant(problem=f"its axis point does not resolve with the overrides asked for ({exc})")
    return Variant(differences, asked=not config_differences(stored, asked_config), declared_then=declared_then)


def _declared_then(experiment: Experiment, scale: str, point: Mapping[str, Any], stored: RunConfig,
                   overrides_json: Any) -> frozenset[str]:
    """The keys in which `stored` differs from today's declaration even with the run's own recorded overrides
    (the results table's `overrides_json`) applied: what an earlier declaration set. Empty when not recorded."""
    try:
        given = json.loads(overrides_json) if isinstance(overrides_json, str) else None
        if not isinstance(given, dict):
            return frozenset()
        with_given = declared_config(experiment, scale, point, stored.seed, given)
    except (ConfigError, ValueError, TypeError, KeyError):
        return frozenset()
    return frozenset(key for key, _, _ in config_differences(stored, with_given))


def config_differences(stored: RunConfig, reference: RunConfig) -> tuple[tuple[str, str, str], ...]:
    """(key, stored, reference) for each semantic key (the seed left out) in which the two configs differ."""
    mine, theirs = _flat(semantic_dict(stored)), _flat(semantic_dict(reference))
    differences = []
    for key in sorted((set(mine) | set(theirs)) - {"seed"}):
        a, b = mine.get(key, "(default)"), theirs.get(key, "(default)")
        if canonical_json(a) != canonical_json(b):
            differences.append((key, _shown(a), _shown(b)))
    return tuple(differences)


def run_variants(results: pd.DataFrame, overrides: Mapping[str, Any] | None = None) -> dict[str, Variant]:
    """run_id -> Variant for every run in a results table (`asked`: made with `overrides`)."""
    if results.empty:
        return {}
    runs = results.drop_duplicates("run_id")
    return {row["run_id"]: variant_of(row, overrides) for row in runs.to_dict("records")}


# ---- choosing what a section shows ----------------------------------------------------------------------
@dataclass(frozen=True)
class Selection:
    kept: pd.DataFrame                   # the rows of the runs shown
    left_out: dict[str, str]             # run_id -> why
    shown: dict[str, Variant]            # experiment -> the variant shown


def select(ours: pd.DataFrame, variants: Mapping[str, Variant], overrides: Mapping[str, Any] | None = None
           ) -> Selection:
    """Per experiment (ours is one scale): the declared variant if any run has it, else the most common one
    (ties: the variant of the most recently written run); with `overrides`, the runs made with them and no
    others. Every other run is left out with why."""
    if ours.empty:
        return Selection(ours, {}, {})
    runs = ours.drop_duplicates("run_id")
    keep, left_out, shown = set(), {}, {}
    for name, part in runs.groupby("experiment", sort=True):
        mine = {r: variants.get(r) or variant_of(row, overrides)
                for r, row in zip(part["run_id"], part.to_dict("records"))}
        written = dict(zip(part["run_id"], part["written_at"].fillna("") if "written_at" in part else [""] * len(part)))
        usable = {r: v for r, v in mine.items() if not v.problem}
        if overrides:
            asked = [r for r, v in usable.items() if v.asked]
            chosen_runs = set(asked)
            if asked:
                shown[name] = usable[asked[0]]
            shows = f"the runs made with{override_args(overrides)}" if asked else \
                f"no run: none was made with{override_args(overrides)}"
        else:
            chosen_runs = set()
            if usable:
                counts = Counter(v.key for v in usable.values())
                latest = {k: max(written[r] for r, v in usable.items() if v.key == k) for k in counts}
                key = DECLARED if DECLARED in counts else max(counts, key=lambda k: (counts[k], latest[k]))
                chosen_runs = {r for r, v in usable.items() if v.key == key}
                shown[name] = usable[next(iter(chosen_runs))]
            shows = "" if name not in shown else \
                "the declared config" if shown[name].declared else shown[name].describe()
        for run_id, variant in mine.items():
            if run_id in chosen_runs:
                keep.add(run_id)
            else:
                left_out[run_id] = variant.describe() + (f" (the report shows {shows})" if shows else "")
    return Selection(ours[ours["run_id"].isin(keep)], left_out, shown)


def versions_note(results: pd.DataFrame) -> list[str]:
    """A line naming the config versions a results folder mixes (none when it holds one)."""
    if results.empty or "config_version" not in results:
        return []
    runs = results.drop_duplicates("run_id")
    counts = runs["config_version"].map(lambda v: "unrecorded" if v != v or v is None else f"{int(v)}").value_counts()
    if len(counts) < 2:
        return []
    listed = ", ".join(f"{version} ({n} runs)" for version, n in sorted(counts.items()))
    return [f"This results folder mixes config versions: {listed}. Runs of a version other than the declared one "
            "are left out of each section, which names them."]
