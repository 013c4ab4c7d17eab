"""One pretraining for the runs that differ only in how they are evaluated.

Two runs whose configs differ only in `eval.*` keys (an evaluation-only axis: Table 8's transfer datasets, the
label fractions of Table 7, a user's evaluation protocol) pretrain the same network. A run that starts with no
checkpoint of its own takes the finished checkpoint of such a run from the store (`reuse_pretraining`): train()
then resumes at its last step and only evaluates. The run records where its pretraining came from
(`pretraining_from` in status.json and final.json), so that device-hours count that pretraining once
(reports/what_ran.py). A run trained again with `run --redo` trains its own pretraining (`trains_own_pretraining`),
and only a run that trained its own is taken as a donor: another run's copy may hold a pretraining since redone.

kNN monitoring during training (eval.knn_every_epochs) is kept in the key: it runs inside the training loop.
data.loader "auto" is keyed as what it resolves to for the dataset, so a run that names the loader "auto" resolves
to shares the pretraining of one that leaves it "auto".
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

from registry.run_id import canonical_json, semantic_dict
from registry.store import CHECKPOINT_NAME, METRICS_NAME, RunStore
from simclr_core.config import RunConfig

# Evaluation keys that act during pretraining and so belong to the pretraining key.
_TRAINING_EVAL_KEYS = ("knn_every_epochs",)
# status.json's field that `run --redo` sets (the time of the redo): the run takes no other run's pretraining.
REDO_FIELD = "redo"


def pretraining_key(cfg: RunConfig | Mapping[str, Any]) -> str:
    """A hash of everything in `cfg` but its end-of-training evaluation settings."""
    from simclr_core.data.catalog import loader_for   # here: the data package imports torch, reports must not

    cfg = cfg if isinstance(cfg, RunConfig) else RunConfig.from_dict(cfg)
    # "auto" and what it means for the dataset (resident CIFAR-10, streamed ImageNet) train the same way
    cfg = cfg.with_overrides({"data.loader": loader_for(cfg.data.dataset, cfg.data.loader)})
    semantic = semantic_dict(cfg)
    evaluation = semantic.pop("eval", {})
    semantic["eval"] = {k: v for k, v in evaluation.items() if k in _TRAINING_EVAL_KEYS}
    return hashlib.sha256(canonical_json(semantic).encode("ascii")).hexdigest()[:12]


def trains_own_pretraining(store: RunStore, run_id: str) -> bool:
    """True for a run that `run --redo` trains again: it trains from scratch, pretraining included."""
    return bool((store.status(run_id) or {}).get(REDO_FIELD))


def finished_pretrainings(store: RunStore) -> dict[str, str]:
    """Pretraining key -> a finished run of `store` whose checkpoint holds it and that trained it itself (one read
    of the store)."""
    found: dict[str, str] = {}
    for run_id in store.run_ids():
        if not store.is_done(run_id) or not store.has_checkpoint(run_id) or store.problem(run_id):
            continue
        if store.pretraining_from(run_id):
            continue
        recorded = (store.config(run_id) or {}).get("config")
        try:
            found.setdefault(pretraining_key(recorded), run_id)
        except Exception:            # no config, or a config.json of an older layout: not a donor
            continue
    return found


def _copy(source: Path, target: Path, link: bool) -> None:
    """`source` to `target` atomically; with `link`, a hard link where the file system allows one (for a file
    that is only ever replaced, never written in place: the checkpoint, not the appended training curve)."""
    tmp = target.with_name(f".{target.name}.reuse-{os.getpid()}.tmp")   # train() deletes it if a kill leaves it
    tmp.unlink(missing_ok=True)
    try:
        if not link:
            raise OSError("copy asked for")
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def reuse_pretraining(store: RunStore, run_id: str, cfg: RunConfig) -> str | None:
    """Seed `run_id`'s folder with the checkpoint (and training curve) of a finished run of the same pretraining,
    unless it has a checkpoint of its own or is being trained again (--redo); the donor's run id, or None when it
    trains itself."""
    if store.has_checkpoint(run_id) or trains_own_pretraining(store, run_id):
        return None
    donor = finished_pretrainings(store).get(pretraining_key(cfg))    # never run_id: it has no checkpoint
    if donor is None:
        return None
    source, target = store.run_dir(donor), store.run_dir(run_id)
    if (source / METRICS_NAME).exists():
        _copy(source / METRICS_NAME, target / METRICS_NAME, link=False)
    _copy(source / CHECKPOINT_NAME, target / CHECKPOINT_NAME, link=True)
    return donor
