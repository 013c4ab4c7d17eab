"""Semi-supervised protocol: fine-tune the whole encoder plus a new linear head on a few labels.

"we sample 1% or 10% of the labeled ILSVRC-12 training datasets in a class-balanced way (~12.8 and
~128 images per class respectively). We simply fine-tune the whole base network on the labeled data
without regularization" (Chen et al. 2020, Sec. 6). Appendix B.5: SGD with Nesterov momentum 0.9,
learning rate 0.05 x BatchSize / 256, no warmup, no weight decay, random crop + flip only; the
official code decays the rate with a cosine, as here.

The protocol trains a deep copy, so the caller's encoder is never modified (checked bit for bit).
Augmentation is the caller's: ``augment(uint8 batch on the training device, generator) -> float
batch``, the network input, normalised by the callable itself (as `simclr_core.augment` pipelines
do; the paper used random crop + flip). The generator is a seeded CPU torch.Generator, so drawing
per-sample parameters needs no device sync. Without ``augment``: (x / 255 - mean) / std only.
On the streamed data path the training split is an image stream (data/stream.py's EvalImages): the
labelled images are decoded whole, one batch ahead, and ``augment`` receives the list of originals
(C, H_i, W_i), so each crop is drawn on the original image, as in pretraining. The labelled images
and their order are the same on both paths (where every image can be decoded: the resident path draws them
among the images its decoding kept). There, an unreadable labelled image is replaced by another image of its
batch, trained under that image's own label (stream.LabelledOriginals), so that the subset's draw does not depend
on decoding and a step keeps its batch size; the protocol (protocols.py) counts such images apart from the
images fine-tuned on. An unreadable test image is left out of the accuracy with its label.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from simclr_core.evaluate.accuracy import mean_per_class_accuracy, topk_accuracy
from simclr_core.evaluate.features import (autocast, channel_stats, eval_mode, labelled_features, module_device,
                                           normalize)
from simclr_core.evaluate.frozen import require_unchanged, snapshot_state
from simclr_core.evaluate.inputs import (is_image_stream, require_int, require_labelled_split, require_labels,
                                         require_sgd_settings, require_stats)
from simclr_core.evaluate.linear import (MOMENTUM, cosine_lr, epoch_batches, linear_classifier, sgd_nesterov,
                                         steps_per_epoch)
from simclr_core.validation import ConfigError, require_range

Augment = Callable[[Tensor, torch.Generator], Tensor]


class Progress(Protocol):
    """Where a fine-tuning keeps its progress between attempts."""

    def load(self) -> dict[str, Any] | None:
        """The state an earlier attempt of this fine-tuning saved, or None (start from the beginning)."""

    def due(self) -> bool:
        """Whether to save the state at this epoch end."""

    def save(self, state: dict[str, Any]) -> None:
        """Keep `state` (CPU tensors that nothing else holds) for the next attempt; it may end the run there (a stop
        requested: stop_request.StoppedInEvaluation)."""


def _require_fraction(label_fraction: float) -> None:
    require_range("label_fraction", label_fraction, low=0, high=1, low_inclusive=False)


def class_quotas(labels: Tensor, label_fraction: float, *, num_classes: int) -> Tensor:
    """Examples to keep per class (num_classes,): round(label_fraction x n_c), at least 1 for a present
    class (round half up), 0 for an absent one."""
    counts = torch.bincount(labels, minlength=num_classes)                 # (C,)
    quotas = torch.floor(counts.double() * label_fraction + 0.5).long()
    return torch.where(counts > 0, quotas.clamp(min=1), 0)


def balanced_subset(labels: Tensor, label_fraction: float, *, num_classes: int, seed: int) -> Tensor:
    """Indices (sorted, int64, on labels' device) of a seeded class-balanced ``label_fraction`` subset.

    Each class keeps `class_quotas` of its examples, chosen uniformly at random: one seeded
    permutation, a stable sort by class (random order within each class), and the first quota of
    each class. The same seed gives the same subset on any device.
    """
    _require_fraction(label_fraction)
    require_int("num_classes", num_classes, low=1)
    require_int("seed", seed, low=0)
    require_labels("labels", labels, num_classes=num_classes)
    n = labels.shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(labels.device)  # (N,)
    shuffled = labels[perm]
    order = torch.sort(shuffled, stable=True).indices                      # (N,) grouped by class
    by_class = shuffled[order]
    counts = torch.bincount(labels, minlength=num_classes)
    first_of_class = counts.cumsum(0) - counts                             # (C,)
    rank_in_class = torch.arange(n, device=labels.device) - first_of_class[by_class]
    keep = rank_in_class < class_quotas(labels, label_fraction, num_classes=num_classes)[by_class]
    return perm[order[keep]].sort().values


def require_subset(subset, n: int) -> Tensor:
    """`subset` as a sorted int64 tensor of distinct indices into n training examples, else ConfigError."""
    subset = torch.as_tensor(subset)
    if subset.dim() != 1 or subset.dtype.is_floating_point or subset.dtype == torch.bool:
        raise ConfigError(f"subset must be a 1-D tensor of integer indices, got {subset.dtype} of shape "
                          f"{tuple(subset.shape)}")
    subset = subset.long().sort().values
    if subset.numel() and (subset[0] < 0 or subset[-1] >= n):
        bad = int(subset[0] if subset[0] < 0 else subset[-1])
        raise ConfigError(f"subset index {bad} is outside the {n} training examples; valid indices lie in "
                          f"[0, {n - 1}]")
    if subset.unique().numel() != subset.numel():
        raise ConfigError("subset lists a training example twice; give each index once")
    return subset


def finetune_eval(encoder: nn.Module, train_images: Tensor, train_labels: Tensor, test_images: Tensor,
                  test_labels: Tensor, *, mean: Sequence[float], std: Sequence[float], num_classes: int,
                  label_fraction: float, epochs: int, batch_size: int, lr: float, seed: int,
                  augment: Augment | None = None, weight_decay: float = 0.0, momentum: float = MOMENTUM,
                  eval_batch_size: int = 512, device: torch.device | str | None = None,
                  autocast_dtype: torch.dtype | None = None, channels_last: bool = False,
                  mean_per_class: bool = False, subset: Tensor | None = None,
                  progress: Progress | None = None) -> dict[str, float]:
    """Fine-tuned accuracy (percent) on the test split:
    {"finetune_top1": ..., "finetune_top5": ..., "label_fraction": label_fraction}, and
    "finetune_mean_per_class_acc" with ``mean_per_class`` (accuracy.mean_per_class_accuracy).

    ``lr`` is the peak rate used as given (paper: 0.05 x batch_size / 256), decayed per step with a
    cosine to 0 over ``epochs``; BatchNorm of the copy trains (batch statistics), as in fine-tuning.
    ``subset``: indices of the labelled training examples (a fixed list, e.g. the paper's published 1% of
    ImageNet: subset_files.py); None -> `balanced_subset(train_labels, label_fraction, seed=seed)`.
    ``progress``: resume from its state, and save the state at epoch ends where it is due (the module's docstring).
    """
    require_int("num_classes", num_classes, low=1)
    _require_fraction(label_fraction)
    require_labelled_split("train", train_images, train_labels, num_classes=num_classes)
    require_labelled_split("test", test_images, test_labels, num_classes=num_classes)
    require_stats(mean, std, channels=train_images.shape[1])
    require_int("epochs", epochs, low=1)
    require_int("batch_size", batch_size, low=2)  # BatchNorm in train mode needs two examples
    require_int("eval_batch_size", eval_batch_size, low=1)
    require_sgd_settings(lr=lr, weight_decay=weight_decay, momentum=momentum, seed=seed, autocast_dtype=autocast_dtype)
    if augment is not None and not callable(augment):
        raise ConfigError(f"augment={augment!r} must be a callable (uint8 batch, generator) -> float batch")
    if subset is None:
        subset = balanced_subset(train_labels, label_fraction, num_classes=num_classes, seed=seed)
    else:
        subset = require_subset(subset, train_labels.shape[0]).to(train_labels.device)
    if subset.numel() < 2:
        raise ConfigError(f"label_fraction={label_fraction!r} keeps {subset.numel()} labelled example(s); "
                          "fine-tuning needs at least 2")

    streamed = is_image_stream(train_images)
    if streamed and augment is None:
        raise ConfigError("fine-tuning on streamed images needs an `augment` that crops views from the originals "
                          "(a list of (C, H_i, W_i) uint8 images, generator) -> float batch")
    device = module_device(encoder) if device is None else torch.device(device)
    before = snapshot_state(encoder)
    # The labelled images: a uint8 (n, C, S, S) tensor and its labels, or (streamed) their originals, decoded batch
    # by batch, each batch with the labels of the images it holds.
    images = train_images.originals(subset) if streamed else train_images[subset.to(train_images.device)]
    labels = train_labels[subset].to(device, torch.long)                   # (n,)
    count, side = subset.numel(), train_images.shape[-1]
    mean_t, std_t = channel_stats(mean, std, device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    model = copy.deepcopy(encoder).to(device, memory_format=memory_format)
    with eval_mode(model), torch.no_grad():                                # probe the width D of h
        feature_dim = model(torch.zeros(1, train_images.shape[1], side, side, device=device)).shape[1]
    head = linear_classifier(feature_dim, num_classes, feature_bn=False,
                             generator=torch.Generator().manual_seed(seed + 2)).to(device)
    network = nn.Sequential(model, head).train()
    optimizer = sgd_nesterov(network, lr=lr, weight_decay=weight_decay, momentum=momentum)
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16)
    shuffle_gen = torch.Generator().manual_seed(seed + 1)
    augment_gen = torch.Generator().manual_seed(seed + 3)

    per_epoch = steps_per_epoch(count, batch_size)
    total_steps = epochs * per_epoch
    saved = progress.load() if progress is not None else None
    start_epoch = 0 if saved is None else restore_training_state(saved, epochs, per_epoch, network, optimizer, scaler,
                                                                 shuffle_gen, augment_gen)
    step = start_epoch * per_epoch
    for epoch in range(start_epoch, epochs):
        order = epoch_batches(count, batch_size, shuffle_gen)
        batches = images.batches(order) if streamed else (
            (images[idx.to(images.device)].to(device, non_blocking=True), labels[idx.to(device)]) for idx in order)
        for batch, batch_labels in batches:
            x = augment(batch, augment_gen) if augment is not None else normalize(batch, mean_t, std_t)
            x = x.contiguous(memory_format=memory_format)
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(step, total_steps, lr)
            with autocast(device, autocast_dtype):
                logits = network(x)
            loss = F.cross_entropy(logits.float(), batch_labels.to(device, non_blocking=True))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
        if progress is not None and epoch + 1 < epochs and progress.due():
            progress.save(training_state(epoch + 1, step, network, optimizer, scaler, shuffle_gen, augment_gen))

    logits, test_labels = labelled_features(network, test_images, test_labels, mean=mean, std=std,
                                            batch_size=eval_batch_size, device=device, autocast_dtype=autocast_dtype,
                                            channels_last=channels_last)
    require_unchanged(encoder, before, during="fine-tuning (which must train a copy)")
    top1, top5 = topk_accuracy(logits, test_labels)
    metrics = {"finetune_top1": top1, "finetune_top5": top5, "label_fraction": label_fraction}
    if mean_per_class:
        metrics["finetune_mean_per_class_acc"] = mean_per_class_accuracy(logits, test_labels)
    return metrics


def training_state(epochs_done: int, step: int, network: nn.Module, optimizer: torch.optim.Optimizer,
                   scaler: torch.amp.GradScaler, shuffle_gen: torch.Generator,
                   augment_gen: torch.Generator) -> dict[str, Any]:
    """What the fine-tuning (or the training of a linear classifier: linear_augmented.py) after `epochs_done` epochs
    depends on, as CPU copies (training goes on meanwhile); `network`: what trains."""
    return _cpu_copy({"epochs_done": epochs_done, "step": step, "network": network.state_dict(),
                      "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                      "shuffle_generator": shuffle_gen.get_state(), "augment_generator": augment_gen.get_state()})


def restore_training_state(state: dict[str, Any], epochs: int, per_epoch: int, network: nn.Module,
                           optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, shuffle_gen: torch.Generator,
                           augment_gen: torch.Generator) -> int:
    """Put a saved `state` back in place; the epochs it had done."""
    done = state["epochs_done"]
    if not 0 < done < epochs or state["step"] != done * per_epoch:
        raise ValueError(f"the saved fine-tuning state (epoch {done}, step {state['step']}) is not one of this "
                         f"fine-tuning of {epochs} epochs of {per_epoch} steps")
    network.load_state_dict(state["network"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    shuffle_gen.set_state(state["shuffle_generator"])
    augment_gen.set_state(state["augment_generator"])
    return done


def _cpu_copy(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _cpu_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu_copy(v) for v in value)
    return value
