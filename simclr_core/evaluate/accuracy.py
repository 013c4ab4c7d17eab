"""Top-k accuracy in percent, the metric every protocol reports (`*_top1`, `*_top5`), and mean per-class accuracy."""
from __future__ import annotations

import torch
from torch import Tensor


def topk_accuracy(scores: Tensor, labels: Tensor, ks: tuple[int, ...] = (1, 5)) -> tuple[float, ...]:
    """Percent of rows whose label is among the k highest ``scores`` (M, C), for each k in ``ks``.

    k is clipped to C (top-5 of a 3-class problem is 100 %). Ties are broken by torch.topk. The
    counts stay on the device until one transfer at the end.
    """
    max_k = min(max(ks), scores.shape[1])
    top = scores.topk(max_k, dim=1).indices                      # (M, max_k)
    hits = top.eq(labels.to(top.device).view(-1, 1))             # (M, max_k)
    counts = [hits[:, :min(k, max_k)].any(dim=1).sum() for k in ks]
    total = scores.shape[0]
    return tuple(100.0 * c / total for c in torch.stack(counts).tolist())


def mean_per_class_accuracy(scores: Tensor, labels: Tensor) -> float:
    """Top-1 accuracy (percent) of each class present in ``labels``, averaged over those classes.

    Table 8 reports it for Aircraft, Pets, Caltech-101 and Flowers, whose test sets are not balanced. The top-1
    class is torch.topk's, as in `topk_accuracy`, so both agree on ties; counts are summed in float64.
    """
    predicted = scores.topk(1, dim=1).indices.squeeze(1)                   # (M,)
    labels = labels.to(predicted.device).long()
    size = max(scores.shape[1], int(labels.max()) + 1)
    hits = torch.bincount(labels, weights=predicted.eq(labels).double(), minlength=size)   # (C,)
    counts = torch.bincount(labels, minlength=size)
    present = counts > 0
    return 100.0 * (hits[present] / counts[present]).mean().item()
