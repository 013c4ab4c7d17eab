"""Which evaluation protocol reports which final.json metric, without importing the protocols (or torch).

Every protocol's metrics share one prefix: knn_top1 (knn), linear_top5 (linear), finetune_top1_10pct
(finetune), transform_rotation_gh (transform_probe), transfer_linear_top1 (transfer), supervised_top1
(supervised: a supervised run's own classifier). A declaration that names
a metric can so say which protocol must run for it; simclr_core.evaluate.protocols checks that its table
and this one agree.
"""
from __future__ import annotations

METRIC_PREFIXES: dict[str, str] = {
    "knn": "knn_",
    "linear": "linear_",
    "finetune": "finetune_",
    "transform_probe": "transform_",
    "transfer": "transfer_",
    "supervised": "supervised_",
}


def protocol_for_metric(metric: str) -> str | None:
    """The protocol whose metrics `metric` is one of; None for a metric of training itself (e.g. final_loss)."""
    for protocol, prefix in METRIC_PREFIXES.items():
        if metric.startswith(prefix):
            return protocol
    return None
