"""What a plan costs, printed: `registry run --dry-run`'s table and per-scale hours, and `registry scales`' ladder.

Hours come from registry/estimate.py's measured rates, each line naming the device its rate was measured on.
"""
from __future__ import annotations

import argparse
from collections import Counter

from registry.declare import Experiment, Run
from registry.discover import get_experiment, list_experiments, where_declared
from registry.estimate import (Total, encoder_title, estimate, format_device_hours, format_hours,
                               reference_views_per_s, split_sizes, total, view_geometry)
from registry.pretraining import finished_pretrainings, pretraining_key
from registry.scales import DEFAULT_SCALE, SCALES, Scale, get_scale
from registry.store import RunStore
from simclr_core.config import RunConfig
from simclr_core.validation import ConfigError


# The ablation whose hours `scales` quotes: six runs of the default model, the cost of most ablations per point.
TYPICAL_ABLATION = "temperature_norm"


def _describe_training(cfg: RunConfig) -> str:
    """What a scale trains by default: data, encoder, batch, length, evaluation (an ablation varies its axes)."""
    train, test = split_sizes(cfg)
    size, stem = view_geometry(cfg)
    length = f"{cfg.max_steps} steps" if cfg.max_steps else f"{cfg.epochs:g} epochs"
    evals = " + ".join(f"linear ({cfg.eval.linear_epochs} epochs)" if p == "linear" else p
                       for p in cfg.eval.protocols)
    return (f"{cfg.data.dataset}, {train:,} training / {test:,} test images at {size} px; "
            f"{encoder_title(cfg.encoder.name)} x{cfg.encoder.width:g}, {stem} stem; batch {cfg.batch_size:,}; "
            f"{length}; evaluation {evals}")


def cmd_scales(args: argparse.Namespace) -> int:
    names = list_experiments()
    typical = get_experiment(TYPICAL_ABLATION if TYPICAL_ABLATION in names else names[0]) if names else None
    print(f"scales, the package's cheapest first, then any of yours (--scale NAME; default {DEFAULT_SCALE}); hours "
          "are per device, summed over runs")
    for scale in SCALES.values():
        print(f"{scale.name}")
        print(f"  purpose   {scale.purpose}")
        print(f"  trains    {_describe_training(scale.shrink(scale.start()))}")
        print(f"  seeds     {scale.seeds} per axis point by default (--seeds overrides)")
        print(f"  hardware  {scale.hardware}")
        if typical is None:
            print(f"  hours     no experiment is declared ({where_declared('an experiment')})")
            continue
        one = _scale_total(typical, scale, None)
        every = total((run.config for name in names for run in get_experiment(name).runs(scale)), scale.hardware)
        print(f"  hours     {typical.name}: {one.runs} runs, {format_device_hours(one.hours, scale.hardware)}; "
              f"all {len(names)} experiments: {every.runs:,} runs, {format_device_hours(every.hours, scale.hardware)}")
        print(f"            {every.rate_text()}")
    return 0


def _views_per_s(scale: Scale, gpu_images_per_s: float | None) -> float | None:
    """--gpu-images-per-s as the planner's ResNet-50-1x-224px views/s, at GPU scales only."""
    return 2 * gpu_images_per_s if gpu_images_per_s and scale.hardware == "gpu" else None


def _rate_note(scale: Scale, gpu_images_per_s: float | None) -> str:
    """Where the hours' rate comes from when --gpu-images-per-s replaces the reference GPU's."""
    if _views_per_s(scale, gpu_images_per_s) is None:
        return ""
    return (f", scaled by {gpu_images_per_s:,.0f} / {reference_views_per_s('gpu') / 2:,.0f} ResNet-50-1x-224px "
            "images/s (given by --gpu-images-per-s)")


def _scale_total(experiment: Experiment, scale: Scale, gpu_images_per_s: float | None) -> Total:
    """Hours of all of `experiment`'s runs at `scale` with its default seeds, one device each."""
    return total((run.config for run in experiment.runs(scale)), scale.hardware,
                 _views_per_s(scale, gpu_images_per_s))


def plan_notes(runs: list[Run]) -> list[str]:
    """Settings of the plan's runs that cost far more than they seem to, one line each, for before they start."""
    from registry.run_memory import view_side
    from simclr_core.models.encoders import stem_cost_note

    notes = Counter(note for run in runs
                    if (note := stem_cost_note(run.config.encoder.stem, view_side(run.config))) is not None)
    return [f"note: {n} of the {len(runs)} runs: {note}" if n < len(runs) else f"note: {note}"
            for note, n in notes.items()]


def print_plan(runs: list[Run], scale_name: str, store: RunStore, parallel: int,
               gpu_images_per_s: float | None = None) -> set[str]:
    """The plan's table and hours; returns the ids of the runs it says `run` refuses (a batch larger than the
    training split, as estimate.split_sizes counts it: a local copy's own images, else the catalog's)."""
    scale = get_scale(scale_name)
    views_per_s = _views_per_s(scale, gpu_images_per_s)
    unit = "GPU-hours" if scale.hardware == "gpu" else "CPU-hours"
    header = f"  {'run id':<52} {'state':<9} {'batch':>6} {'epochs':>7} {'steps':>8} {'views':>10} {'est.':>10}"
    print(header)
    # Pretrainings paid for elsewhere: by a finished run of the results folder (e.g. Table 6's, for Table 7) or by
    # a run above in this plan.
    finished = finished_pretrainings(store)
    total_views, total_hours, rates, pretrained = 0, 0.0, Counter(), set()
    too_large = Counter()   # (batch_size, training images, dataset): runs no step can be made for; `run` refuses them
    refused = set()
    for run in runs:
        cost = estimate(run.config, scale.hardware, views_per_s)
        train_images = split_sizes(run.config)[0]
        if run.config.batch_size > train_images and store.state(run.run_id) != "done":
            too_large[run.config.batch_size, train_images, run.config.data.dataset] += 1
            refused.add(run.run_id)
        rates[cost.rate] += 1
        state = store.state(run.run_id)
        if state != "done" and store.has_checkpoint(run.run_id):
            state = "resume"
        key = pretraining_key(run.config)
        shared = key in pretrained or finished.get(key, run.run_id) != run.run_id
        hours = cost.hours - cost.pretrain_hours if shared else cost.hours
        if shared and state == "pending":
            state = "eval only"      # it will evaluate a finished run's pretraining, or an earlier one's here
        pretrained.add(key)
        total_views += cost.views if hours == cost.hours else 0
        total_hours += hours if state != "done" else 0.0
        print(f"  {run.run_id:<52} {state:<9} {run.config.batch_size:>6} {run.config.epochs:>7g} "
              f"{cost.steps:>8,} {cost.views:>10,} {format_hours(hours):>10}")
    print(f"  total: {len(runs)} runs, {total_views:,} training views; still to run: about "
          f"{total_hours:,.2f} {unit}" + (f" (~{format_hours(total_hours / parallel)} wall with "
                                          f"--max-parallel {parallel})" if scale.hardware == "cpu" else ""))
    print(f"  assumes the {Total(len(runs), total_hours, rates).rate_text()}{_rate_note(scale, gpu_images_per_s)}; "
          "FLOPs-scaled to each run's model (registry/estimate.py)"
          + ("; your GPU's ResNet-50 1x 224 px images/s: --gpu-images-per-s R" if scale.hardware == "gpu"
             else "; rough"))
    for (batch_size, train_images, dataset), n in too_large.items():
        print(f"  {n} of the {len(runs)} runs: batch_size={batch_size} exceeds the {train_images:,} training images "
              f"of {dataset!r}, so no step can be made and `run` refuses them (choose batch_size <= {train_images}); "
              "their steps and hours above are not a plan")
    experiment = get_experiment(runs[0].experiment)
    print(f"  {experiment.name} at every scale, all its runs as declared (without overrides) with the scale's default "
          "seeds, one device each (python -m registry scales describes them):")
    for other in SCALES.values():
        try:
            cost = _scale_total(experiment, other, gpu_images_per_s)
        except ConfigError as exc:
            print(f"    {other.name:<6} cannot be resolved: {exc}")
            continue
        print(f"    {other.name:<6} {cost.runs:>5} runs  {format_device_hours(cost.hours, other.hardware):<26} "
              f"({cost.rate_text()}{_rate_note(other, gpu_images_per_s)})")
    return refused
