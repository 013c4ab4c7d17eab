"""Run ids: the only place they are made.

A run id names a run's *semantic* configuration: every value that can change what is trained or how it
is measured, the seed and `config_version` included. Where files go, how often the run logs or
checkpoints, which trackers it reports to and whether torch compiles the model do not change the result,
so they are left out; a run moved to another disk or re-launched with a different logging cadence keeps
its id and its results.

    hash12    = sha256(canonical_json(semantic_dict(cfg)))[:12]
    run id    = "<experiment>/<axis-values>-<hash12>", e.g. "augment_pairs/crop+color-3f9a1c2e0b4d"
                ("<experiment>/<axis-values>+seed<N>-<hash12>" for a seed N other than 0)

Canonical JSON: sorted keys, no whitespace, floats via `repr` (Python's shortest round-trip form),
tuples as lists, ASCII only. Values are first coerced to their declared field types (an int given for a
float field becomes a float), so `epochs=100` and `epochs=100.0` name the same run.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any, Mapping

from simclr_core.config import RunConfig

HASH_LENGTH = 12
# Dotted config keys that never enter the id: file locations, logging/tracking/checkpoint cadence,
# torch.compile, which computes what the eager model does (simclr_core/compiling.py), and views_ahead, which
# only changes when a step's views are made (simclr_core/augment/ahead.py).
# (Worker counts and the launcher are not RunConfig fields; they live in the executor.)
EXCLUDED_KEYS = frozenset({
    "data.data_dir",
    "trackers",
    "log_every_steps",
    "checkpoint_every_steps",
    "compile",
    "views_ahead",
})
# Any field whose last component matches is also left out (e.g. a future "data.num_workers").
EXCLUDED_LEAF_PATTERN = re.compile(r"(^|\.)(num_workers|[a-z_]*_dir)$")
# Fields added after the ids of config_version 1 were first made: left out while they hold their default,
# so every run that does not use them keeps its id and its stored results.
ADDED_LATER_KEYS = frozenset({
    "data.loader", "data.label_column",
    "augment.local_crops",
    "augment.local_crop_size",
    "augment.local_crop_scale",
    "augment.sobel_prob", "augment.noise_prob", "augment.rotate_prob",
    "augment.equalize_prob", "augment.solarize_prob", "augment.solarize_threshold", "augment.motion_blur_prob",
    "augment.motion_blur_fraction",
    "eval.transform_tasks", "eval.transform_epochs", "eval.transform_batch_size", "eval.transform_lr",
    "eval.transfer_dataset", "eval.transfer_protocols", "eval.transfer_loader", "eval.transfer_scratch",
    "eval.finetune_subset_files", "eval.finetune_scratch", "eval.linear_augment",
    "method",
})

_UNSAFE = re.compile(r"[^A-Za-z0-9.+=_-]+")


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, floats via repr, tuples as lists; non-finite floats are refused."""
    return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def semantic_dict(cfg: RunConfig) -> dict[str, Any]:
    """The configuration that identifies a run: `cfg` with typed values, minus the excluded keys."""
    typed = RunConfig.from_dict(cfg.to_dict()).to_dict()   # coerce ints given for float fields, etc.
    return _drop_excluded(typed, RunConfig().to_dict(), prefix="")


def config_hash(cfg: RunConfig) -> str:
    """The 12-hex-digit content hash of the run's semantic configuration."""
    return hashlib.sha256(canonical_json(semantic_dict(cfg)).encode("ascii")).hexdigest()[:HASH_LENGTH]


# A run's folder is `<label>[+seedN]-<hash12>`, and file systems refuse names over 255 bytes: a longer label (an
# axis of long tuples, say) is cut here and marked with "~".
MAX_LABEL_CHARS = 200


def point_label(point: Mapping[str, Any]) -> str:
    """Readable, path-safe axis values: {"first": "crop", "second": "color"} -> "crop+color".

    Booleans read as the axis name or its negation ({"loss.normalize": False} -> "no-normalize"),
    numbers in their shortest form (0.5 -> "0.5", 100.0 -> "100").
    """
    if not point:
        return "base"
    parts = []
    for key, value in point.items():
        leaf = key.replace("__", ".").split(".")[-1]
        if isinstance(value, bool):
            parts.append(leaf if value else f"no-{leaf}")
        elif isinstance(value, float):
            parts.append(f"{value:g}")
        elif isinstance(value, (tuple, list)):
            parts.append("-".join(map(str, value)))
        else:
            parts.append(str(value))
    return _UNSAFE.sub("_", "+".join(parts))


def make_run_id(experiment: str, point: Mapping[str, Any], cfg: RunConfig) -> str:
    """`<experiment>/<axis-values>-<hash12>`; a seed other than 0 is shown too (`...+seed1-...`).

    Seed 0 carries no suffix, so a run's id never depends on how many other seeds were run beside it:
    adding seeds to a finished one-seed grid reuses its runs.
    """
    label = point_label(point)
    if len(label) > MAX_LABEL_CHARS:       # ASCII (path-safe); the hash keeps it unique, config.json has the point
        label = label[:MAX_LABEL_CHARS - 1] + "~"
    if cfg.seed != 0:
        label = f"{label}+seed{cfg.seed}"
    return f"{experiment}/{label}-{config_hash(cfg)}"


def split_run_id(run_id: str) -> tuple[str, str, str]:
    """"exp/label-hash" -> ("exp", "label", "hash")."""
    experiment, _, rest = run_id.partition("/")
    label, _, digest = rest.rpartition("-")
    return experiment, label, digest


# ---- helpers -------------------------------------------------------------------------------------
def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return [_plain(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"non-finite float {obj!r} cannot be part of a run id")
    return obj


def never_in_id(dotted: str) -> bool:
    """Whether the config key `dotted` never enters a run id (EXCLUDED_KEYS, EXCLUDED_LEAF_PATTERN)."""
    return dotted in EXCLUDED_KEYS or bool(EXCLUDED_LEAF_PATTERN.search(dotted))


def _drop_excluded(tree: dict[str, Any], defaults: dict[str, Any], prefix: str) -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        dotted = prefix + key
        if never_in_id(dotted):
            continue
        if dotted in ADDED_LATER_KEYS and value == defaults[key]:
            continue
        out[key] = _drop_excluded(value, defaults[key], dotted + ".") if isinstance(value, dict) else value
    return out
