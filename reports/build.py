"""From the results table to report sections: one per (artefact, scale), each with its context.

A section carries what a reader needs so that a number is never read out of context: what ran (from the runs'
own configs and final.json: reports/what_ran.py), which runs were left out because their config differs in
more than the seed (reports/variants.py), what the paper's numbers are to those runs (the paper's setting, an
ImageNet trend, or CIFAR-10 references: reports/references.py), how many of the declared runs are done, the
experiment's deviations from the paper, and where each published number came from.

The declared run count is len(points) x len(seeds), the same at every scale (a scale changes compute, never
which runs exist: registry/scales.py). It is counted here without `Experiment.runs(scale)`, whose config
validation imports the training code and with it torch.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from registry.declare import Experiment
from registry.deviations import setting_deviations
from registry.discover import get_experiment, list_experiments
from registry.overrides import override_args
from registry.scales import DEFAULT_SCALE, SCALES
from reports import references
import reports.tables  # noqa: F401  (registers Tables 3, 6, 7, 8 and Appendix B.9 in ARTEFACTS)
from reports.artefacts import ARTEFACTS, Artefact, Spec, temperature_runs
from reports.claims import Conclusion
from reports.own import at_declared_points, own_builder, published_builder
from reports.compare import canon, point_keys, with_metric
from reports.published import published_cells
from reports.variants import Variant, run_variants, select
from reports.what_ran import WhatRan, describe
from simclr_core.config import RunConfig
from simclr_core.validation import ConfigError, did_you_mean, require_choice

# The scale whose runs use the paper's own setting; numbers at any other scale compare by rank only.
COMPARABLE_SCALE = "paper"
# What the published numbers are to an experiment of our own.
OWN = "none (an experiment of our own)"


@dataclass
class Section:
    key: str
    experiment: str
    title: str
    scale: str | None           # None: no results at any scale yet (the paper's side only)
    artefact: Artefact
    done: int | None            # declared (point, seed) runs finished at this scale; None for the sweep curve
    expected: int | None
    deviations: tuple[str, ...]
    published_file: str
    sources: list[str] = field(default_factory=list)
    read_as_counts: dict[str, int] = field(default_factory=dict)
    plot_bound: float = math.nan    # the largest stated error of a number read off a plot
    ours_metric: str = ""           # the metric our column shows: the paper's, or its stand-in
    metric: str = ""                # the paper's metric
    what_ran: WhatRan = field(default_factory=lambda: WhatRan(0, []))
    # Finished runs at this scale not shown, {run_id: why} (another config than the one shown).
    left_out: dict[str, str] = field(default_factory=dict)
    # experiment -> the config variant shown (reports/variants.py); declared unless no run has the declared one.
    shown: dict[str, Variant] = field(default_factory=dict)
    # The key=value overrides the report was asked for: it shows only the runs made with them.
    overrides: dict[str, Any] = field(default_factory=dict)
    # Runs shown although not of the declared config (no run has it, none asked for): not counted in `done`.
    undeclared_shown: int = 0
    # What the published cells are to our runs: "ImageNet (the paper's setting)" or "ImageNet trend".
    reference: str = references.IMAGENET_TREND
    # Claims checked against the paper's numbers for our runs' dataset (CIFAR-10), and reference lines.
    reference_conclusions: list[Conclusion] = field(default_factory=list)
    reference_notes: list[str] = field(default_factory=list)

    @property
    def own(self) -> bool:
        """An experiment of our own: no published numbers, no paper column."""
        return self.reference == OWN

    @property
    def conclusions(self) -> list[Conclusion]:
        return self.artefact.conclusions + self.reference_conclusions

    @property
    def comparable(self) -> bool:
        """Whether our values may be compared with the paper's as values, not only as a ranking: the paper's
        scale, on ImageNet, with the declared config."""
        return (self.scale == COMPARABLE_SCALE and self.reference in references.OWN_SETTING
                and all(v.declared for v in self.shown.values()))

    @property
    def variant_notes(self) -> list[str]:
        """One line per experiment whose runs here are not of the declared config."""
        if self.overrides:
            return [f"{name}: the runs made with{override_args(self.overrides)}, as the report was asked (without "
                    "them it shows the declared config)" for name in sorted(self.shown) or [self.experiment]]
        return [f"{name}: no run has today's declared config; shown: the most common variant, "
                f"{variant.describe()}" for name, variant in sorted(self.shown.items()) if not variant.declared]

    @property
    def progress(self) -> str:
        if self.expected is None:
            return self.artefact.notes[0] if self.artefact.notes else ""
        at = f"at scale {self.scale}" if self.scale else "at any scale"
        status = "complete" if self.done == self.expected else "incomplete"
        instead = "; ".join(v.describe() for _, v in sorted(self.shown.items()) if not v.declared)
        return f"{self.done} of {self.expected} runs done {at} ({status})" + (
            f"; shown instead: {self.undeclared_shown} run(s) of another config ({instead})"
            if self.undeclared_shown else "")

    @property
    def slug(self) -> str:
        return f"{self.key}_{self.scale or 'noruns'}"


def declared_progress(experiment_name: str, ours: pd.DataFrame, scale: str | None = None) -> tuple[int, int]:
    """(finished declared runs, declared runs): distinct (axis point, seed) pairs among the declared ones, at
    `scale` (default: the runs' own scale, else the default scale)."""
    experiment = get_experiment(experiment_name)
    if scale is None and len(ours) and ours["scale"].nunique() == 1:
        scale = ours["scale"].iloc[0]
    declared_seeds = set(experiment.seeds_at(scale if scale in SCALES else DEFAULT_SCALE))
    if ours.empty:
        return 0, len(experiment.axes) * len(declared_seeds)
    runs = ours.drop_duplicates("run_id")
    # Seeds run beyond the declared ones (`--seeds`) count as declared too.
    seeds = {canon(s) for s in declared_seeds | set(runs["seed"].dropna().astype(int))}
    expected = len(experiment.axes) * len(seeds)
    axes = experiment.axes.names
    declared = {tuple(canon(p[a]) for a in axes) for p in experiment.points()}
    done = {(key, canon(seed)) for key, seed in zip(point_keys(runs, axes), runs["seed"]) if key in declared}
    return len(done), expected


def _scales_present(frame: pd.DataFrame) -> list[str]:
    present = set(frame["scale"]) if len(frame) and "scale" in frame else set()
    return [s for s in SCALES if s in present] + sorted(present - set(SCALES))


def build_sections(results: pd.DataFrame, keys: Sequence[str] | None = None,
                   scales: Sequence[str] | None = None, overrides: Mapping[str, Any] | None = None,
                   on_built: Callable[[Section], None] | None = None) -> list[Section]:
    """Every requested artefact (all by default) at every requested scale (by default: each scale that has
    results for it, or one results-free section showing the paper's side when there are none). With `overrides`
    (key=value as `run` took them), each section shows the runs made with them instead of the declared config.
    `on_built` is called with each section as soon as it is built (the CLI's line per section)."""
    overrides = dict(overrides or {})
    specs = all_artefacts()
    keys = artefact_keys(keys, specs) if keys else None
    for scale in scales or ():
        require_choice("--scale", scale, SCALES)
    sections = []
    variants = run_variants(results, overrides)
    for key, spec in specs.items():
        if keys and key not in keys:
            continue
        experiment = get_experiment(spec.experiment)
        if key != experiment.artefact and not key.startswith(experiment.artefact + "_"):   # "tab5_sweep" by "tab5"
            raise ConfigError(f"artefact {key!r} is registered for experiment {experiment.name!r}, which "
                              f"declares artefact {experiment.artefact!r}")
        published = published_cells(experiment, spec.published_extra)
        mine = _runs_read_by(spec, results)
        for scale in scales or _scales_present(mine) or [None]:
            ours = mine[mine["scale"] == scale] if scale and len(mine) else mine.iloc[0:0]
            sections.append(_section(key, spec, experiment, published, ours, scale, variants, overrides))
            if on_built is not None:
                on_built(sections[-1])
    return sections


def artefact_keys(names: Sequence[str], specs: Mapping[str, Spec]) -> list[str]:
    """The artefacts `names` ask for: an artefact's key, or the name of the experiment that a run command took,
    which stands for every artefact built from it (temperature_norm: tab5 and tab5_sweep)."""
    keys = []
    for name in names:
        built_from = [key for key, spec in specs.items() if spec.experiment == name]
        if name not in specs and not built_from:
            raise ConfigError(f"artefact={name!r} is neither an artefact nor an experiment; choose an artefact "
                              f"({', '.join(specs)}) or an experiment (python -m registry list)"
                              f"{did_you_mean(name, [*specs, *list_experiments()])}")
        keys.extend([name] if name in specs else built_from)
    return keys


def all_artefacts() -> dict[str, Spec]:
    """The registered paper artefacts, then one per experiment that has no report function of its own (reports/
    own.py: ours alone, or beside its published numbers where it declares some), keyed by its artefact name."""
    names = list_experiments()     # first: loading a user's declarations registers their report functions
    specs = dict(ARTEFACTS)
    for name in names:
        experiment = get_experiment(name)
        taken = specs.get(experiment.artefact)
        if taken is not None and taken.experiment != name:      # a report function's key (tab5_sweep, ...)
            raise ConfigError(f"experiment {name!r} reports as artefact {experiment.artefact!r}, which the report "
                              f"builds from experiment {taken.experiment!r}: no report would show its runs; rename "
                              f"it, or give it artefact='{name}_own'")
        if experiment.artefact not in specs:
            if experiment.published is None:    # its cells are its declared points: "what ran" describes those
                specs[experiment.artefact] = Spec(own_builder(experiment), name, drawn=at_declared_points(experiment))
            else:
                specs[experiment.artefact] = Spec(published_builder(experiment), name)
    return specs


def _runs_read_by(spec: Spec, results: pd.DataFrame) -> pd.DataFrame:
    if results.empty:
        return results
    if spec.reads_every_experiment:
        return results[results["run_id"].isin(temperature_runs(results, None)["run_id"])]
    if spec.also_reads:
        return results[results["experiment"].isin((spec.experiment, *spec.also_reads))]
    return results[results["experiment"] == spec.experiment]


def _section(key: str, spec: Spec, experiment: Experiment, published: pd.DataFrame, ours: pd.DataFrame,
             scale: str | None, variants: dict[str, Variant], overrides: Mapping[str, Any]) -> Section:
    selection = select(ours, variants, overrides)
    described, left_out = _drawn(spec, selection.kept, selection.left_out, ours)
    ours, ours_metric = with_metric(selection.kept, experiment.metric)
    undeclared = 0
    if spec.reads_every_experiment:
        done, expected = None, None
    else:     # each experiment's declared runs counted among its own
        counts = []
        for name in (experiment.name, *spec.also_reads):
            part = ours[ours["experiment"] == name] if len(ours) else ours
            if not overrides and name in selection.shown and not selection.shown[name].declared:
                # another config, shown as no run has the declared one: the runs the artefact draws of it
                undeclared += described.loc[described["experiment"] == name, "run_id"].nunique()
                part = part.iloc[0:0]
            counts.append(declared_progress(name, part, scale))
        done, expected = sum(c[0] for c in counts), sum(c[1] for c in counts)
    declared = published[published["declared"].astype(bool)]
    what_ran = describe(described)      # all its rows: a stand-in metric keeps only its own
    artefact = spec.build(ours, published)
    # What the paper's numbers are to these runs; with none finished, to the runs the scale would make.
    datasets = what_ran.datasets or ([experiment.resolve(scale, experiment.points()[0], 0, overrides).data.dataset]
                                     if scale in SCALES else [])
    own = experiment.published is None
    # CIFAR-10 references beside ImageNet cells (Appendix B.9's own artefacts already hold them as cells)
    cifar = references.on_cifar10(datasets) and not own and experiment.published.file != references.CIFAR10_FILE
    line = references.best_linear_line(artefact.compare, ours_metric) if cifar else None
    return Section(
        key=key, experiment=experiment.name,
        title=(spec.title or experiment.title) + (" — temperature curve from every run of its config varying "
                                                  "loss.temperature" if spec.reads_every_experiment else ""),
        scale=scale, artefact=artefact, done=done, expected=expected,
        deviations=((f"the runs shown were made with{override_args(overrides)}; the deviations below are "
                     "those declared for the experiment's setting, then those these runs' own settings make",)
                    if overrides else ()) + tuple(experiment.deviations)
                   + _setting_deviations(experiment, selection.kept, scale, overrides),
        published_file="" if own else experiment.published.file,
        sources=sorted(set(declared["source"]) - {""}),
        read_as_counts={k: int(v) for k, v in declared["read_as"].value_counts().items()},
        plot_bound=plot_bound(declared), ours_metric=ours_metric, metric=experiment.metric,
        what_ran=what_ran, left_out=left_out, shown=selection.shown, overrides=dict(overrides),
        undeclared_shown=undeclared,
        reference=OWN if own else references.comparison_label(datasets, experiment.published.file),
        reference_conclusions=references.cifar10_conclusions(key, artefact.compare, experiment.name) if cifar else [],
        reference_notes=[line] if line else [])


def _setting_deviations(experiment: Experiment, shown: pd.DataFrame, scale: str | None,
                        overrides: Mapping[str, Any]) -> tuple[str, ...]:
    """The deviations the runs' settings make (registry/deviations.py): those of the runs `shown` (their own configs:
    a variant other than the declared one may be shown), or with none shown, of the declared setting at `scale` with
    the overrides the report was asked for (every point, seed 0)."""
    if len(shown) and "config_json" in shown:
        return setting_deviations(_readable_configs(shown.drop_duplicates("run_id")["config_json"]))
    if scale not in SCALES:
        return ()
    return setting_deviations(experiment.resolve(scale, point, 0, overrides) for point in experiment.points())


def _readable_configs(texts) -> list[RunConfig]:
    """The stored configs (config_json) that this code reads; one it cannot (written by other code) describes
    nothing here: variants.py names it where it keeps a run out."""
    configs = []
    for text in texts:
        try:
            configs.append(RunConfig.from_dict(json.loads(text)))
        except (ConfigError, ValueError, TypeError):
            continue
    return configs


def _drawn(spec: Spec, kept: pd.DataFrame, left_out: dict[str, str], ours: pd.DataFrame
           ) -> tuple[pd.DataFrame, dict[str, str]]:
    """The shown runs the artefact draws, and the runs left out less those of the experiments it sets apart (the
    temperature curve names an experiment of another config in its notes; its runs are no part of the section)."""
    if spec.drawn is None or kept.empty:
        return kept, left_out
    drawn = spec.drawn(kept)
    apart = set(kept["experiment"]) - set(drawn["experiment"])
    experiment_of = dict(zip(ours["run_id"], ours["experiment"]))
    return drawn, {run_id: why for run_id, why in left_out.items() if experiment_of.get(run_id) not in apart}


def plot_bound(published: pd.DataFrame) -> float:
    """The largest stated plot-reading bound among the cells (NaN when every cell is printed)."""
    bounds = published.loc[published["read_as"] == "read_from_plot", "uncertainty"].astype(float)
    return float(bounds.max()) if len(bounds) else math.nan
