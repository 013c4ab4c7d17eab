"""Linear evaluation protocol: a linear classifier trained on the frozen encoder's representations.

"a linear classifier is trained on top of the frozen base network, and test accuracy is used as a
proxy for representation quality" (Chen et al. 2020, Sec. 2.3). Appendix B.6 trains it like the
fine-tuning runs of B.5 -- SGD with Nesterov momentum 0.9, no warmup, no regularisation -- with
learning rate 0.1 x BatchSize / 256 for 90 epochs; the official code decays it with a cosine.

Head, as in the official code (`supervised_head` -> `linear_layer(use_bn=False)` in
https://github.com/google-research/simclr/blob/244e7128004c5fd3c7805cf3135c79baa6c3bb96/model_util.py):
one dense layer with bias, weights drawn from N(0, 0.01^2); its L2 weight decay, when used, touches
the kernel only, never the bias. `feature_bn=True` adds a BatchNorm without affine parameters on the
features before it (the MoCo v3 / MAE linear-probe practice); it is off by default because the
SimCLR code does not use it.

Deviation from the paper, for speed: the features are extracted once (encoder in eval mode, images
as given) and the head trains on them for every epoch, so there is no random crop + flip augmentation
of the inputs during linear training, which the paper used on ImageNet.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from simclr_core.evaluate.accuracy import mean_per_class_accuracy, topk_accuracy
from simclr_core.evaluate.features import labelled_features, module_device
from simclr_core.evaluate.frozen import require_unchanged, snapshot_state
from simclr_core.evaluate.inputs import require_int, require_labelled_split, require_sgd_settings, require_stats

# momentum 0.9 with Nesterov: the paper's optimiser for linear evaluation and fine-tuning (Appendix B.5).
MOMENTUM = 0.9


def linear_classifier(feature_dim: int, num_classes: int, *, feature_bn: bool,
                      generator: torch.Generator | None = None) -> nn.Sequential:
    """[BatchNorm1d(affine=False)] -> Linear(feature_dim, num_classes), kernel ~ N(0, 0.01^2), bias 0."""
    linear = nn.Linear(feature_dim, num_classes)
    nn.init.normal_(linear.weight, std=0.01, generator=generator)
    nn.init.zeros_(linear.bias)
    bn = [nn.BatchNorm1d(feature_dim, affine=False)] if feature_bn else []
    return nn.Sequential(*bn, linear)


def sgd_nesterov(head: nn.Module, *, lr: float, weight_decay: float, momentum: float = MOMENTUM
                 ) -> torch.optim.SGD:
    """SGD with Nesterov momentum; weight decay (coupled L2, as the official l2_loss) on weights only."""
    decay = [p for p in head.parameters() if p.ndim > 1]
    no_decay = [p for p in head.parameters() if p.ndim <= 1]
    return torch.optim.SGD([{"params": decay, "weight_decay": weight_decay},
                            {"params": no_decay, "weight_decay": 0.0}],
                           lr=lr, momentum=momentum, nesterov=True)


def cosine_lr(step: int, total_steps: int, peak: float) -> float:
    """Cosine decay from ``peak`` at step 0 to 0 at ``total_steps``, no warmup."""
    return 0.5 * peak * (1.0 + math.cos(math.pi * step / total_steps))


def epoch_batches(num_examples: int, batch_size: int, generator: torch.Generator) -> list[Tensor]:
    """A fresh random permutation split into batches; a trailing batch of one example is dropped
    (BatchNorm cannot normalise a single example, and one example per epoch is noise)."""
    batches = list(torch.randperm(num_examples, generator=generator).split(batch_size))
    if batch_size > 1 and len(batches) > 1 and batches[-1].numel() == 1:
        batches.pop()
    return batches


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    full, rest = divmod(num_examples, batch_size)
    return full + (1 if rest > 1 or (rest == 1 and full == 0) else 0)


def train_linear_head(train_features: Tensor, train_labels: Tensor, *, num_classes: int, epochs: int,
                      batch_size: int, lr: float, weight_decay: float, feature_bn: bool, seed: int,
                      momentum: float = MOMENTUM) -> nn.Sequential:
    """Fit `linear_classifier` on fixed features (N, D) with cross-entropy; returns it in eval mode."""
    head = linear_classifier(train_features.shape[1], num_classes, feature_bn=feature_bn,
                             generator=torch.Generator().manual_seed(seed)).to(train_features.device)
    return fit_on_features(head, train_features, train_labels, epochs=epochs, batch_size=batch_size, lr=lr,
                           weight_decay=weight_decay, momentum=momentum,
                           shuffle=torch.Generator().manual_seed(seed + 1))


def fit_on_features(model: nn.Module, features: Tensor, labels: Tensor, *, epochs: int, batch_size: int,
                    lr: float, weight_decay: float, shuffle: torch.Generator,
                    momentum: float = MOMENTUM) -> nn.Module:
    """Train `model` with cross-entropy on fixed (N, D) features: SGD with Nesterov momentum, cosine decay per
    step, batches drawn from `shuffle`; returns it in eval mode."""
    device = features.device
    optimizer = sgd_nesterov(model, lr=lr, weight_decay=weight_decay, momentum=momentum)
    labels = labels.to(device, torch.long)
    total_steps = epochs * steps_per_epoch(features.shape[0], batch_size)
    step = 0
    model.train()
    for _ in range(epochs):
        for idx in epoch_batches(features.shape[0], batch_size, shuffle):
            idx = idx.to(device, non_blocking=True)
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(step, total_steps, lr)
            loss = F.cross_entropy(model(features[idx]), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    return model.eval()


def require_linear_settings(train_images: Tensor, train_labels: Tensor, test_images: Tensor, test_labels: Tensor, *,
                            mean: Sequence[float], std: Sequence[float], num_classes: int, epochs: int,
                            batch_size: int, lr: float, weight_decay: float, feature_bn: bool, seed: int,
                            momentum: float, extract_batch_size: int, autocast_dtype: torch.dtype | None) -> None:
    """ConfigError (or TypeError) naming the first setting of a linear evaluation that cannot be used, before any
    compute (linear_eval's and linear_augmented.linear_eval_augmented's)."""
    require_int("num_classes", num_classes, low=1)
    require_labelled_split("train", train_images, train_labels, num_classes=num_classes)
    require_labelled_split("test", test_images, test_labels, num_classes=num_classes)
    require_stats(mean, std, channels=train_images.shape[1])
    require_int("epochs", epochs, low=1)
    require_int("batch_size", batch_size, low=1)
    require_int("extract_batch_size", extract_batch_size, low=1)
    require_sgd_settings(lr=lr, weight_decay=weight_decay, momentum=momentum, seed=seed, autocast_dtype=autocast_dtype)
    if feature_bn:  # BatchNorm needs at least two examples per batch
        require_int("batch_size with feature_bn", batch_size, low=2)
        require_int("len(train_images) with feature_bn", train_images.shape[0], low=2)


def linear_eval(encoder: nn.Module, train_images: Tensor, train_labels: Tensor, test_images: Tensor,
                test_labels: Tensor, *, mean: Sequence[float], std: Sequence[float], num_classes: int,
                epochs: int = 100, batch_size: int = 256, lr: float = 0.1, weight_decay: float = 0.0,
                feature_bn: bool = False, seed: int = 0, momentum: float = MOMENTUM,
                extract_batch_size: int = 512, device: torch.device | str | None = None,
                autocast_dtype: torch.dtype | None = None, channels_last: bool = False,
                mean_per_class: bool = False) -> dict[str, float]:
    """Linear-evaluation accuracy (percent) of the frozen encoder: {"linear_top1": ..., "linear_top5": ...}, and
    "linear_mean_per_class_acc" with ``mean_per_class`` (accuracy.mean_per_class_accuracy).

    ``lr`` is the peak learning rate used as given (the paper's rule 0.1 x batch_size / 256 gives the
    default 0.1 at batch size 256); it decays with a per-step cosine to 0 over ``epochs``.
    The encoder's parameters and buffers are snapshotted first and compared bit for bit at the end;
    any change (e.g. a module that updates a buffer even in eval mode) raises RuntimeError, because the
    number would then not measure a frozen representation. The encoder's train/eval flags are restored.
    """
    require_linear_settings(train_images, train_labels, test_images, test_labels, mean=mean, std=std,
                            num_classes=num_classes, epochs=epochs, batch_size=batch_size, lr=lr,
                            weight_decay=weight_decay, feature_bn=feature_bn, seed=seed, momentum=momentum,
                            extract_batch_size=extract_batch_size, autocast_dtype=autocast_dtype)

    device = module_device(encoder) if device is None else torch.device(device)
    before = snapshot_state(encoder)
    extract = dict(mean=mean, std=std, batch_size=extract_batch_size, device=device,
                   autocast_dtype=autocast_dtype, channels_last=channels_last)
    # (N, D), (M, D), no grad: a stream leaves its unreadable images out, with their labels
    train_features, train_labels = labelled_features(encoder, train_images, train_labels, **extract)
    test_features, test_labels = labelled_features(encoder, test_images, test_labels, **extract)

    head = train_linear_head(train_features, train_labels, num_classes=num_classes, epochs=epochs,
                             batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                             feature_bn=feature_bn, seed=seed, momentum=momentum)
    with torch.no_grad():
        logits = head(test_features)                                     # (M, C)
    require_unchanged(encoder, before, during="linear evaluation")
    return linear_scores(logits, test_labels, mean_per_class=mean_per_class)


def linear_scores(logits: Tensor, labels: Tensor, *, mean_per_class: bool) -> dict[str, float]:
    """{"linear_top1", "linear_top5"} (percent) of the classifier's test logits (M, C), and
    "linear_mean_per_class_acc" with ``mean_per_class``."""
    top1, top5 = topk_accuracy(logits, labels)
    metrics = {"linear_top1": top1, "linear_top5": top5}
    if mean_per_class:
        metrics["linear_mean_per_class_acc"] = mean_per_class_accuracy(logits, labels)
    return metrics
