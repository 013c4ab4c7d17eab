"""Weighted k-nearest-neighbour classification of frozen features: the kNN monitor of the CIFAR benchmarks.

Wu et al. 2018 (InstDisc, arXiv:1805.01978, Sec. 3.4), as run by the MoCo CIFAR demo, lightly and
solo-learn: features are l2-normalised, the k training features with the highest cosine similarity
s_i to a test feature vote for their class with weight exp(s_i / temperature), and the class with
the largest summed weight wins. No training, no randomness: a cheap, hyper-parameter-light proxy for
linear evaluation that can run every few epochs.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from simclr_core.evaluate.accuracy import topk_accuracy
from simclr_core.evaluate.features import labelled_features
from simclr_core.evaluate.inputs import (require_autocast_dtype, require_int, require_labelled_split,
                                         require_labels, require_stats)
from simclr_core.validation import ConfigError, require_range


def _require_knn_args(k: int, temperature: float, num_classes: int, chunk_size: int) -> None:
    require_int("k", k, low=1)
    require_range("temperature", temperature, low=0, low_inclusive=False)
    require_int("num_classes", num_classes, low=1)
    require_int("chunk_size", chunk_size, low=1)


def _require_features(name: str, features: Tensor) -> None:
    if not isinstance(features, Tensor) or features.ndim != 2 or not features.dtype.is_floating_point:
        got = (f"dtype={features.dtype}, shape={tuple(features.shape)}" if isinstance(features, Tensor)
               else f"type={type(features).__name__}")
        raise ConfigError(f"{name} must be a floating-point tensor of shape (N, D); got {got}")


def knn_class_scores(train_features: Tensor, train_labels: Tensor, test_features: Tensor, *, k: int,
                     temperature: float, num_classes: int, chunk_size: int = 512) -> Tensor:
    """Summed vote weights per class, (M, num_classes), for each of the M test features.

    Memory peaks at chunk_size x N_train similarities; k larger than N_train uses all training points.
    Computed in float32 at least (float64 inputs stay float64).
    """
    dtype = torch.promote_types(train_features.dtype, torch.float32)
    train = F.normalize(train_features.to(dtype), dim=1)                # (N, D)
    labels = train_labels.to(train.device, torch.long)                  # (N,) scatter index
    k = min(k, train.shape[0])
    scores = []
    for start in range(0, test_features.shape[0], chunk_size):
        test = F.normalize(test_features[start:start + chunk_size].to(train.device, dtype), dim=1)  # (B, D)
        sim = test @ train.T                                            # (B, N) cosine similarities
        top_sim, top_idx = sim.topk(k, dim=1)                           # (B, k), sorted descending
        # exp((s - s_max) / t): the same vote up to a per-row factor, without overflow for small t.
        weights = ((top_sim - top_sim[:, :1]) / temperature).exp()      # (B, k)
        votes = torch.zeros(test.shape[0], num_classes, dtype=dtype, device=train.device)
        scores.append(votes.scatter_add_(1, labels[top_idx], weights))  # (B, C)
    return torch.cat(scores)


def knn_classify(train_features: Tensor, train_labels: Tensor, test_features: Tensor, *, k: int = 200,
                 temperature: float = 0.1, num_classes: int, chunk_size: int = 512) -> Tensor:
    """Predicted class (M,) int64 of each test feature by the temperature-weighted vote of its k nearest
    training features (cosine similarity). Ties between classes go to the lowest class index."""
    _require_knn_args(k, temperature, num_classes, chunk_size)
    _require_features("train_features", train_features)
    _require_features("test_features", test_features)
    if train_features.shape[1] != test_features.shape[1]:
        raise ConfigError(f"train_features have D={train_features.shape[1]} but test_features have "
                          f"D={test_features.shape[1]}; they must match")
    require_labels("train_labels", train_labels, num_classes=num_classes, length=train_features.shape[0],
                   length_of="train_features")
    scores = knn_class_scores(train_features, train_labels, test_features, k=k, temperature=temperature,
                              num_classes=num_classes, chunk_size=chunk_size)
    return scores.argmax(dim=1)


def knn_eval(encoder: nn.Module, train_images: Tensor, train_labels: Tensor, test_images: Tensor,
             test_labels: Tensor, *, mean: Sequence[float], std: Sequence[float], num_classes: int,
             k: int = 200, temperature: float = 0.1, batch_size: int = 512,
             device: torch.device | str | None = None, autocast_dtype: torch.dtype | None = None,
             channels_last: bool = False, chunk_size: int = 512) -> dict[str, float]:
    """kNN accuracy (percent) of the frozen encoder: {"knn_top1": ..., "knn_top5": ...}.

    Features of both splits come from `extract_features` (eval mode, no grad, modes restored); the
    training split is the neighbour memory, the test split is classified by `knn_class_scores`. An image a
    streamed split cannot decode is left out of both, with its label (`labelled_features`).
    """
    _require_knn_args(k, temperature, num_classes, chunk_size)
    require_labelled_split("train", train_images, train_labels, num_classes=num_classes)
    require_labelled_split("test", test_images, test_labels, num_classes=num_classes)
    require_stats(mean, std, channels=train_images.shape[1])
    require_int("batch_size", batch_size, low=1)
    require_autocast_dtype(autocast_dtype)

    extract = dict(mean=mean, std=std, batch_size=batch_size, device=device, autocast_dtype=autocast_dtype,
                   channels_last=channels_last)
    # (N, D), (M, D): a stream leaves its unreadable images out, with their labels
    train_features, train_labels = labelled_features(encoder, train_images, train_labels, **extract)
    test_features, test_labels = labelled_features(encoder, test_images, test_labels, **extract)
    scores = knn_class_scores(train_features, train_labels, test_features, k=k, temperature=temperature,
                              num_classes=num_classes, chunk_size=chunk_size)
    top1, top5 = topk_accuracy(scores, test_labels)
    return {"knn_top1": top1, "knn_top5": top5}
