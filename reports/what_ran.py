"""What ran, read from the runs themselves (their resolved configs and final.json), never from a scale's
nominal summary: a command-line override (`data.train_limit=None`, `epochs=8`) shows here as it ran.

Where the runs of a section differ in a field, the field shows every value (up to four) or the range.
Device-hours are the sum over runs of (pretrain_seconds + eval_seconds) x processes / 3600, or, where final.json has
it, pretrain_device_seconds (each session's seconds x its process count: exact for a run resumed by another count)
+ eval_seconds x processes; a run that evaluated another run's pretraining (registry/pretraining.py) counts its
evaluation only. They are named GPU-hours or CPU-hours by final.json's `device` ("cpu (2 threads)" is a CPU; any
other name, e.g. "NVIDIA H200", a GPU); a run resumed on another device is named with every device that ran it
(final.json's devices_seen), and one that ran on both a CPU and a GPU is counted as its last device's, with a note.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import pandas as pd

from registry.estimate import TRAIN_IMAGES     # each training split's size, for runs without data.train_limit

DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "cifar10_subset": "CIFAR-10 subset (embedded)",
                 "stl10": "STL-10", "imagenet": "ImageNet", "imagefolder": "an image folder",
                 "parquet": "parquet files"}
# Numeric fields with more distinct values than this show as a range.
MAX_LISTED = 4


@dataclass
class WhatRan:
    runs: int
    datasets: list[str]
    # Phrases in reading order: "CIFAR-10, 10,000 training images", "resnet18 width x0.25, cifar stem", ...
    phrases: list[str] = field(default_factory=list)
    hours: dict[str, float] = field(default_factory=dict)         # "GPU-hours" / "CPU-hours" -> hours
    notes: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        if not self.runs:
            return "no finished runs"
        hours = ", ".join(f"{h:.2f} {kind}" for kind, h in self.hours.items()) or "device time not recorded"
        return "; ".join(self.phrases) + f"; {hours} over {self.runs} run(s)" + "".join(f" ({n})" for n in self.notes)


def values_text(values: Iterable[Any], unit: str = "") -> str:
    """One value, a short list, or a range: "3", "0.25, 0.5", "64-2048 (6 values)"."""
    distinct = sorted({v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))},
                      key=lambda v: (isinstance(v, str), v))
    if not distinct:
        return "—"
    shown = [f"{v:,}" if isinstance(v, int) else f"{v:g}" if isinstance(v, float) else str(v) for v in distinct]
    if len(distinct) > MAX_LISTED and all(isinstance(v, (int, float)) for v in distinct):
        return f"{shown[0]}-{shown[-1]}{unit} ({len(distinct)} values)"
    return ", ".join(shown) + unit


def _plain(value: Any) -> Any:
    """numpy/pandas scalars as Python ones; integral floats of integer fields stay as pandas made them."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def train_images(dataset: str, limit: Any) -> int | None:
    full = TRAIN_IMAGES.get(dataset)
    limit = _plain(limit)
    if limit is None:
        return full
    return int(limit) if full is None else min(int(limit), full)


def _metric(runs: pd.DataFrame, metric: str) -> dict[str, float]:
    rows = runs[runs["metric"] == metric]
    return dict(zip(rows["run_id"], rows["value"].astype(float)))


def device_kind(device: Any) -> str:
    if not isinstance(device, str) or not device:
        return "device-hours (device not recorded)"
    return "CPU-hours" if device.lower().startswith("cpu") else "GPU-hours"


def describe(ours: pd.DataFrame) -> WhatRan:
    """What the finished runs in `ours` (rows of registry.store.load_results) were."""
    if ours.empty:
        return WhatRan(0, [])
    runs = ours.drop_duplicates("run_id")
    column = lambda name: [_plain(v) for v in runs[name]] if name in runs else []
    datasets = sorted({d for d in column("data.dataset") if d})
    # final.json's count of the split as read (a local copy of ImageNet may hold fewer images than the catalog's),
    # else the catalog's, for runs written before final.json recorded it.
    read = _metric(ours, "train_split_images")
    images = [int(read[r]) if r in read else train_images(d, limit)
              for r, d, limit in zip(runs["run_id"], column("data.dataset"), column("data.train_limit"))]
    data = ", ".join(DATASET_NAMES.get(d, d) for d in datasets) or "dataset not recorded"
    counted = [n for n in images if n is not None]
    classes = _metric(ours, "train_split_classes")
    of_classes = ""
    if classes and len(classes) == len(runs):
        labelled = [int(c) for c in classes.values() if c > 0]      # 0: a split without labels (final.json's unlabelled)
        of_classes = (" without labels" if not labelled else f" of {values_text(labelled)} classes"
                      + ("" if len(labelled) == len(classes) else " or without labels"))
    phrases = [f"{data}, {values_text(counted)} training images{of_classes}" if len(counted) == len(images)
               else f"{data}, {values_text(counted) + ' or ' if counted else ''}the whole training split",
               f"{values_text(column('encoder.name'))} width x{values_text(column('encoder.width'))}, "
               f"{values_text(column('encoder.stem'))} stem",
               f"{values_text(column('epochs'))} epochs"]
    steps = [s for s in column("max_steps") if s is not None]
    if steps:
        phrases[-1] += f", stopped at max_steps {values_text(steps)} ({len(steps)} of {len(runs)} runs)"
    phrases += [f"batch {values_text(column('batch_size'))}", f"seeds {values_text(column('seed'))}",
                _devices_phrase(column("device"), column("devices_seen"), len(runs))]
    compiled = [mode for mode in column("compiled") if mode not in (None, "off")]
    if compiled:
        phrases.append(f"torch.compile {values_text(compiled)} in {len(compiled)} of {len(runs)} runs")
    what = WhatRan(len(runs), datasets, phrases)
    _device_hours(ours, runs, what)
    return what


def _devices_phrase(devices: list[Any], devices_seen: list[Any], runs: int) -> str:
    """"device NVIDIA H200", naming the devices a resumed run moved between (store's devices_seen) too."""
    several = [seen for seen in devices_seen if isinstance(seen, str) and seen]
    if not any(devices) and not several:
        return "device not recorded"
    named = values_text([*devices, *(name for seen in several for name in seen.split(" then "))])
    if not several:
        return f"device {named}"
    return f"device {named} ({len(several)} of {runs} runs ran on several devices: {values_text(several)})"


def _device_hours(ours: pd.DataFrame, runs: pd.DataFrame, what: WhatRan) -> None:
    total, session, evaluation = (_metric(ours, m) for m in ("pretrain_seconds", "pretrain_seconds_this_session",
                                                             "eval_seconds"))
    processes = _metric(ours, "processes")
    device_seconds = _metric(ours, "pretrain_device_seconds")
    fallback, no_eval, no_processes, untimed, reused, mixed_kinds = 0, 0, 0, 0, 0, 0
    devices_seen = dict(zip(runs["run_id"], runs["devices_seen"])) if "devices_seen" in runs else {}
    donors = runs["pretraining_from"] if "pretraining_from" in runs else [None] * len(runs)
    for run_id, device, donor in zip(runs["run_id"], runs["device"] if "device" in runs else [None] * len(runs),
                                     donors):
        if isinstance(donor, str) and donor:
            reused += 1
            seconds = evaluation.get(run_id, 0.0) * processes.get(run_id, 1.0)
            kind = device_kind(device)
            what.hours[kind] = what.hours.get(kind, 0.0) + seconds / 3600
            continue
        pretrain = total.get(run_id)
        if pretrain is None:
            pretrain = session.get(run_id)
            if pretrain is None:
                untimed += 1
                continue
            fallback += 1
        if run_id not in evaluation:
            no_eval += 1
        if run_id not in processes:
            no_processes += 1
        if run_id in device_seconds:
            seconds = device_seconds[run_id] + evaluation.get(run_id, 0.0) * processes.get(run_id, 1.0)
        else:
            seconds = (pretrain + evaluation.get(run_id, 0.0)) * processes.get(run_id, 1.0)
        kind = device_kind(device)
        what.hours[kind] = what.hours.get(kind, 0.0) + seconds / 3600
        seen = devices_seen.get(run_id)
        if isinstance(seen, str) and len({device_kind(d) for d in seen.split(" then ")}) > 1:
            mixed_kinds += 1
    if mixed_kinds:
        what.notes.append(f"{mixed_kinds} run(s) trained on both CPU and GPU: all their hours counted as their last "
                          "device's")
    if reused:
        what.notes.append(f"{reused} run(s) evaluated another run's pretraining: their evaluation counted only")
    if fallback:
        what.notes.append(f"{fallback} run(s) without pretrain_seconds: counted with pretrain_seconds_this_session, "
                          "their last session only")
    if no_eval:
        what.notes.append(f"{no_eval} run(s) without eval_seconds: evaluation not counted")
    if no_processes:
        what.notes.append(f"{no_processes} run(s) without processes: counted as 1 process")
    if untimed:
        what.notes.append(f"{untimed} run(s) without any training time: not counted")
