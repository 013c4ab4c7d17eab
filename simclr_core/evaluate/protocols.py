"""The evaluation protocols a run can name in eval.protocols, in one registry: `PROTOCOLS[name]`.

Each entry runs one protocol on the trained encoder f(.) with the run's data (train()'s Feed: the evaluation
images and labels of both splits, their statistics) and the run's settings (cfg.eval), and returns its metrics;
a protocol marked `needs_head` also reads the projection head g(.). `run_protocols` runs the named ones in the
registry's order; kNN and linear evaluation share one feature pass over each split. A protocol that reads data
of its own (transfer) says how to check it is there: `require_protocol_data`, which train() calls before
pretraining. A protocol of several fine-tunings (finetune, transfer), or of one long training (linear evaluation on
augmented views) runs `in_parts`: it is given `parts`, which keeps each part's metrics as it ends (those an
interrupted attempt kept are not run again) and gives each training a place to keep its progress (train():
partial_evaluation.py). Adding a protocol is one entry here;
config validation and train() read this table.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from simclr_core.data.catalog import dataset_spec
from simclr_core.data.class_names import how_labels_are_given
from simclr_core.data.locate import Source, locate_source
from simclr_core.evaluate.classifier import classifier_eval
from simclr_core.evaluate.features import reuse_features
from simclr_core.evaluate.finetune import balanced_subset, finetune_eval
from simclr_core.evaluate.knn import knn_eval
from simclr_core.evaluate.linear import linear_eval
from simclr_core.evaluate.linear_augmented import linear_eval_augmented
from simclr_core.evaluate.parts import Parts, Unsaved, run_part
from simclr_core.evaluate.subset_files import official_subsets, require_subset_data
from simclr_core.evaluate.transfer import require_transfer_data, run_transfer
from simclr_core.evaluate.transform_probe import transform_probe_eval
from simclr_core.validation import ConfigError


@dataclass(frozen=True)
class Protocol:
    name: str
    # (encoder, feed, cfg, dtype), and head=g(.) as a keyword where needs_head
    run: Callable[..., dict[str, Any]]
    # True where it reads the frozen encoder's features (shared between such protocols in one evaluation).
    frozen_features: bool = False
    # True where it also reads the projection head g(.).
    needs_head: bool = False
    # (cfg) -> None, raising when data the protocol reads besides the run's own cannot be found.
    check_data: Callable[[Any], None] | None = None
    # True where it classifies the run's own images by their labels (an accuracy over one class measures nothing).
    classifies: bool = False
    # False where it reads none of the run's own splits (transfer: datasets of its own), so needs no test split.
    reads_own_splits: bool = True
    # True where it may train long enough to keep parts of its own (`parts` as a keyword): several fine-tunings, each
    # a part kept on its own, or (linear, with eval.linear_augment) one training, kept with its progress.
    in_parts: bool = False


def _data(feed) -> tuple:
    return feed.train_eval, feed.train_labels, feed.test_eval, feed.test_labels


def _common(feed) -> dict[str, Any]:
    return dict(mean=feed.mean, std=feed.std, num_classes=feed.scored_classes)


def _knn(encoder, feed, cfg, dtype) -> dict[str, Any]:
    return knn_eval(encoder, *_data(feed), k=cfg.eval.knn_k, temperature=cfg.eval.knn_temperature,
                    autocast_dtype=dtype, **_common(feed))


def _linear(encoder, feed, cfg, dtype, *, parts: Parts = Unsaved()) -> dict[str, Any]:
    """On features of the unaugmented images extracted once, or with eval.linear_augment on random crop + flip views
    made anew in every epoch (the paper's protocol: linear_augmented.py), which then keeps its progress as a
    fine-tuning does (one part, "linear")."""
    ev = cfg.eval
    settings = dict(epochs=ev.linear_epochs, batch_size=ev.linear_batch_size, lr=ev.linear_lr, seed=cfg.seed,
                    autocast_dtype=dtype, **_common(feed))
    if not ev.linear_augment:
        return linear_eval(encoder, *_data(feed), **settings)
    augment = _crop_and_flip(feed)
    return run_part(parts, "linear", lambda: linear_eval_augmented(
        encoder, *_data(feed), augment=augment, channels_last=cfg.channels_last,
        progress=parts.progress("linear", encoder), **settings))


def _crop_and_flip(feed):
    """Appendix B.5's augmentation for fine-tuning and linear evaluation, random crop (with resize) and flip, as
    augment(uint8 batch, or the originals where the run streams, generator) -> one normalised view per image."""
    from simclr_core.augment import build_augmentation
    from simclr_core.config import AugmentConfig

    crop = build_augmentation(AugmentConfig(ops=("crop",)), feed.train_eval.shape[-1], feed.mean, feed.std)
    # Where the run streams, each crop is drawn on the original image, as in pretraining.
    return crop.first_view_from_originals if feed.loader == "stream" else crop.first_view


def _finetune(encoder, feed, cfg, dtype, *, parts: Parts = Unsaved()) -> dict[str, Any]:
    """Per label fraction: finetune_top1_<pct>, finetune_top5_<pct> and finetune_examples_<pct> (how many labelled
    images it fine-tuned on), on a class-balanced draw with the run's seed or on the images of the fraction's file
    in eval.finetune_subset_files; where some of those could not be decoded (streamed), finetune_unreadable_<pct>
    counts them, with a warning, and finetune_examples_<pct> leaves them out. Each fine-tuning is a part
    (finetune_<pct>, finetune_scratch_<pct>) that holds its fraction's counts too: a fine-tuning reads each of its
    images."""
    ev, metrics = cfg.eval, {}
    augment = _crop_and_flip(feed)
    listed = [torch.from_numpy(s) for s in official_subsets(cfg)] or [None] * len(ev.finetune_fractions)
    starts = {"finetune": encoder}
    if ev.finetune_scratch:
        starts["finetune_scratch"] = scratch_encoder(cfg, feed.image_size, encoder)
    for fraction, subset in zip(ev.finetune_fractions, listed):
        if subset is None:
            subset = balanced_subset(feed.train_labels, fraction, num_classes=feed.scored_classes, seed=cfg.seed)
        pct = f"{fraction * 100:g}pct"
        for prefix, start in starts.items():
            part = f"{prefix}_{pct}"

            def fine_tune() -> dict[str, Any]:       # called at once, in this iteration
                result = finetune_eval(start, *_data(feed), label_fraction=fraction, epochs=ev.finetune_epochs,
                                       batch_size=ev.finetune_batch_size, lr=ev.finetune_lr, seed=cfg.seed,
                                       augment=augment, subset=subset, autocast_dtype=dtype,
                                       channels_last=cfg.channels_last, progress=parts.progress(part, start),
                                       **_common(feed))
                return {f"{prefix}_top1_{pct}": result["finetune_top1"],
                        f"{prefix}_top5_{pct}": result["finetune_top5"], **_subset_counts(feed, subset, pct)}
            metrics.update(run_part(parts, part, fine_tune))
        unreadable = metrics.get(f"finetune_unreadable_{pct}", 0)
        if unreadable:
            warnings.warn(f"{unreadable} of the {subset.numel()} labelled images of the {pct} subset could not be "
                          "decoded: in each step another image of its batch took the place of each (the batch keeps "
                          f"its size); finetune_examples_{pct} counts the {subset.numel() - unreadable} fine-tuned on, "
                          f"finetune_unreadable_{pct} the others", stacklevel=2)
    return metrics


def _subset_counts(feed, subset: torch.Tensor, pct: str) -> dict[str, int]:
    """finetune_examples_<pct>, and finetune_unreadable_<pct> where some of the subset's images could not be read."""
    unreadable = _unreadable_in_subset(feed, subset)
    return {f"finetune_examples_{pct}": int(subset.numel()) - unreadable,
            **({f"finetune_unreadable_{pct}": unreadable} if unreadable else {})}


def _unreadable_in_subset(feed, subset: torch.Tensor) -> int:
    """How many images of the labelled `subset` (rows of the training split) could not be decoded: on the streamed
    path, where the subset is drawn over every row, those fine-tuning found (it read each of them; the kNN and
    linear passes may have found them first); none on the resident path, whose split holds no such image."""
    if feed.loader != "stream":
        return 0
    return int(np.isin(subset.cpu().numpy(), feed.train_eval.bad.unreadable_rows()).sum())


# Offset of the scratch baseline's initial weights from the run's seed (train() seeds the pretrained network's with
# the seed itself), so that the baseline does not start from the pretraining's initial weights.
SCRATCH_SEED_OFFSET = 7919


def scratch_encoder(cfg, image_size: int, like: nn.Module) -> nn.Module:
    """A newly initialised encoder of the run's architecture on `like`'s device: what eval.finetune_scratch and
    eval.transfer_scratch train from scratch on the labelled images, seeded from the run's seed (the global random
    state is left as it was)."""
    from simclr_core.models import create_encoder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + SCRATCH_SEED_OFFSET)
        fresh = create_encoder(cfg.encoder.name, width=cfg.encoder.width, stem=cfg.encoder.stem,
                               image_size=image_size)
    return fresh.to(next(like.parameters()).device)


def _transform_probe(encoder, feed, cfg, dtype, *, head) -> dict[str, Any]:
    ev = cfg.eval
    return transform_probe_eval(encoder, head, feed.train_eval, feed.test_eval, mean=feed.mean, std=feed.std,
                                tasks=ev.transform_tasks, augment=cfg.augment, epochs=ev.transform_epochs,
                                batch_size=ev.transform_batch_size, lr=ev.transform_lr, seed=cfg.seed,
                                autocast_dtype=dtype)


def _supervised(encoder, feed, cfg, dtype, *, head) -> dict[str, Any]:
    """The classifier a supervised run trained (its `head`), scored on the test split as it is."""
    return classifier_eval(encoder, head, feed.test_eval, feed.test_labels, autocast_dtype=dtype, **_common(feed))


def _transfer(encoder, feed, cfg, dtype, *, parts: Parts = Unsaved()) -> dict[str, Any]:
    scratch = scratch_encoder(cfg, feed.image_size, encoder) if cfg.eval.transfer_scratch else None
    return run_transfer(encoder, cfg, image_size=feed.image_size, mean=feed.mean, std=feed.std, scratch=scratch,
                        autocast_dtype=dtype, parts=parts)


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (  # each one's metric prefix: simclr_core/metric_names.py
    Protocol("knn", _knn, frozen_features=True, classifies=True),
    Protocol("linear", _linear, frozen_features=True, classifies=True, in_parts=True),
    Protocol("finetune", _finetune, check_data=require_subset_data, classifies=True, in_parts=True),
    Protocol("transform_probe", _transform_probe, needs_head=True),
    Protocol("transfer", _transfer, check_data=require_transfer_data, reads_own_splits=False, in_parts=True),
    Protocol("supervised", _supervised, needs_head=True, classifies=True),   # method=supervised runs only
)}


def require_protocol_data(cfg) -> None:
    """Raise (DataNotFoundError, naming where it looked) when data one of cfg.eval.protocols reads besides the run's
    own is missing: called before pretraining, so that no compute is spent on a run that cannot be evaluated."""
    for protocol in PROTOCOLS.values():
        if protocol.name in cfg.eval.protocols and protocol.check_data is not None:
            protocol.check_data(cfg)


def require_classes(cfg, num_classes: int, where: str) -> None:
    """ConfigError when the run classifies its own images (supervised training, an evaluation protocol, or the kNN
    monitor) and its training split has fewer than 2 classes: every accuracy would be 100%, measuring nothing; or
    none (0: a split without labels), which nothing can classify."""
    classifying = _scoring(cfg)
    if cfg.method == "supervised":
        classifying.insert(0, "supervised training (method=supervised)")
    if num_classes >= 2 or not classifying:
        return
    pretrain = "only pretrain: eval.protocols=none eval.knn_every_epochs=0"
    if num_classes == 0:
        lacking, fix = how_labels_are_given(_source_of(cfg.data, "train"))
        raise ConfigError(f"{where} has no labels ({lacking}), and {', '.join(classifying)} would classify its "
                          f"images. {fix}, or {pretrain} (eval.protocols=transfer evaluates on labelled datasets of "
                          "its own)")
    raise ConfigError(f"{where} has {num_classes} class, and {', '.join(classifying)} would classify its images: every "
                      "accuracy would be 100%, measuring nothing. Give the images of each class a folder (or label) "
                      f"of their own, or {pretrain}")


def require_test_labels(cfg, num_classes: int | None, where: str) -> None:
    """ConfigError when the run scores predictions on its test split (an evaluation protocol that classifies, or
    the kNN monitor) and that split has no labels (0 classes; None: not known yet): every score would compare
    predictions with the placeholder label 0."""
    scoring = _scoring(cfg)
    if num_classes != 0 or not scoring:
        return
    lacking, fix = how_labels_are_given(_source_of(cfg.data, "test"))
    raise ConfigError(f"{where} has no labels ({lacking}), and {', '.join(scoring)} would score predictions against "
                      f"them. {fix}, or evaluate without them: eval.knn_every_epochs=0 and eval.protocols among "
                      "transfer (labelled datasets of its own), transform_probe or none")


def _scoring(cfg) -> list[str]:
    """What in the run classifies images of its own splits and scores the predictions: the protocols that do, and
    the kNN monitor."""
    scoring = [name for name in cfg.eval.protocols if PROTOCOLS[name].classifies]
    if cfg.eval.knn_every_epochs:
        scoring.append("the kNN monitor (eval.knn_every_epochs)")
    return scoring


def _source_of(data, split: str) -> Source | None:
    """Where `split` of `data` lies (None where it cannot be found: a message then names label columns)."""
    try:
        return locate_source(dataset_spec(data.dataset, data.label_column), data.data_dir, split)
    except (ConfigError, OSError):
        return None


def run_protocols(encoder: nn.Module, feed, cfg, dtype: torch.dtype | None, names: Sequence[str],
                  head: nn.Module | None = None, announce: Callable[[str], None] | None = None,
                  kept: Mapping[str, dict[str, Any]] | None = None,
                  finished: Callable[[str, dict[str, Any]], None] | None = None,
                  parts_of: Callable[[str], Parts] | None = None) -> dict[str, Any]:
    """The metrics of the protocols `names`, run in the registry's order; `head` is g(.), for those that read it;
    `announce(name)` is called as each protocol starts (a progress bar), `finished(name, metrics)` as it ends.
    `kept` holds the metrics of protocols an interrupted evaluation of the same weights finished
    (simclr_core/partial_evaluation.py): those are not run again, their metrics take their place; `parts_of(name)`,
    the parts of a protocol `in_parts` (default: none kept, none saved). Each protocol seeds its own randomness
    from cfg.seed, so its numbers do not depend on which protocols ran before it."""
    kept = kept or {}
    chosen = [p for p in PROTOCOLS.values() if p.name in names]
    needing_head = [p.name for p in chosen if p.needs_head and p.name not in kept]
    if needing_head and head is None:
        raise ConfigError(f"eval.protocols {', '.join(map(repr, needing_head))} read the projection head g(.), "
                          "which run_protocols was not given; pass head=")
    metrics: dict[str, Any] = {}
    announce = announce or (lambda name: None)
    finished = finished or (lambda name, result: None)

    def run(protocol: Protocol) -> None:
        if protocol.name in kept:
            metrics.update(kept[protocol.name])
            return
        announce(protocol.name)
        extra = {**({"head": head} if protocol.needs_head else {}),
                 **({"parts": parts_of(protocol.name) if parts_of else Unsaved()} if protocol.in_parts else {})}
        result = protocol.run(encoder, feed, cfg, dtype, **extra)
        finished(protocol.name, result)
        metrics.update(result)

    with reuse_features():           # kNN and linear evaluation share one pass over each split
        for protocol in (p for p in chosen if p.frozen_features):
            run(protocol)
    # The others train copies of the encoder or read features of transformed images that no other protocol shares.
    for protocol in (p for p in chosen if not p.frozen_features):
        run(protocol)
    return metrics


__all__ = ["PROTOCOLS", "Protocol", "require_protocol_data", "run_protocols", "scratch_encoder"]
