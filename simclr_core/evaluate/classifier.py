"""A supervised run's own classifier on the test split: the accuracy the paper's supervised baselines report.

The network trained with labels (models/supervised.py) is scored as it is, with no further training: the
encoder f(.) and its linear classifier on h, in eval mode (BatchNorm's running statistics), on the test
split's evaluation images (the centre crop that linear evaluation reads).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from simclr_core.evaluate.accuracy import topk_accuracy
from simclr_core.evaluate.features import labelled_features
from simclr_core.evaluate.inputs import require_labelled_split


def classifier_eval(encoder: nn.Module, classifier: nn.Module, test_images: Tensor, test_labels: Tensor, *,
                    mean: Sequence[float], std: Sequence[float], num_classes: int, batch_size: int = 512,
                    autocast_dtype: torch.dtype | None = None) -> dict[str, float]:
    """{"supervised_top1": ..., "supervised_top5": ...}, percent, of classifier(encoder(x)) on the test split."""
    require_labelled_split("test", test_images, test_labels, num_classes=num_classes)
    logits, test_labels = labelled_features(nn.Sequential(encoder, classifier), test_images, test_labels, mean=mean,
                                            std=std, batch_size=batch_size, autocast_dtype=autocast_dtype)
    top1, top5 = topk_accuracy(logits, test_labels)
    return {"supervised_top1": top1, "supervised_top5": top5}
