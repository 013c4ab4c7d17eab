"""Which evaluation protocol reports which final.json metric, without importing the protocols (or torch).

Every protocol's metrics share one prefix: knn_top1 (knn), linear_top5 (linear), finetune_top1_10pct
(finetune), transform_rotation_gh (transform_probe), transfer_linear_top1 (transfer), supervised_top1
(supervised: a supervised run's own classifier). A declaration that names
a metric can so say which protocol must run for it; simclr_core.evaluate.protocols checks that its table
and this one agree. METRIC_NAMES lists each protocol's metrics, so that a misspelt one (`require_metric`) is
refused where it is declared rather than shown as an empty column.
"""
from __future__ import annotations

import re

from simclr_core.validation import ConfigError, closest

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


# The transformations the transform_probe protocol predicts (simclr_core/evaluate/transform_probe.py's TASKS).
TRANSFORM_TASKS = ("color", "rotation", "noise", "sobel")
# Each protocol's metrics (the accuracies it writes to final.json, not its counts): {pct} is a label fraction in
# percent as the finetune protocol writes it (1pct, 10pct, 12.5pct), {task} one of TRANSFORM_TASKS.
METRIC_NAMES: dict[str, tuple[str, ...]] = {
    "knn": ("knn_top1", "knn_top5"),
    "linear": ("linear_top1", "linear_top5"),
    "finetune": ("finetune_top1_{pct}", "finetune_top5_{pct}", "finetune_scratch_top1_{pct}",
                 "finetune_scratch_top5_{pct}"),
    "transform_probe": ("transform_{task}_h", "transform_{task}_gh", "transform_{task}_random_guess"),
    "transfer": ("transfer_linear_top1", "transfer_linear_mean_per_class_acc", "transfer_finetune_top1",
                 "transfer_finetune_mean_per_class_acc", "transfer_scratch_top1", "transfer_scratch_mean_per_class_acc"),
    "supervised": ("supervised_top1", "supervised_top5"),
}
_FILLED = {"{pct}": r"\d+(?:\.\d+)?(?:e-?\d+)?pct", "{task}": "(?:" + "|".join(TRANSFORM_TASKS) + ")"}


def _pattern(name: str) -> re.Pattern:
    escaped = re.escape(name)
    for placeholder, regex in _FILLED.items():
        escaped = escaped.replace(re.escape(placeholder), regex)
    return re.compile(escaped + "$")


_PATTERNS = {name: _pattern(name) for names in METRIC_NAMES.values() for name in names}


def is_metric(metric: str) -> bool:
    """True where an evaluation protocol reports `metric` (METRIC_NAMES)."""
    return any(pattern.match(metric) for pattern in _PATTERNS.values())


def require_metric(field: str, metric: str) -> str:
    """`metric` if a protocol reports it, else a ConfigError naming the metrics of the protocol its prefix names (of
    every protocol, without one) and the one it most likely meant."""
    if is_metric(metric):
        return metric
    protocol = protocol_for_metric(metric)
    names = METRIC_NAMES[protocol] if protocol is not None else tuple(n for ns in METRIC_NAMES.values() for n in ns)
    pct = re.search(_FILLED["{pct}"] + "$", metric)
    filled = [n.replace("{pct}", pct.group(0) if pct else "10pct").replace("{task}", task)
              for n in names for task in (TRANSFORM_TASKS if "{task}" in n else ("",))]
    match = closest(metric, filled)
    legend = {"{pct}": "a label fraction in percent, e.g. 10pct", "{task}": " or ".join(TRANSFORM_TASKS)}
    legend = "".join(f"; {p}: {text}" for p, text in legend.items() if any(p in n for n in names))
    whose = f": the {protocol} protocol reports" if protocol is not None else "; they report"
    raise ConfigError(f"{field}={metric!r} is not a metric of any evaluation protocol{whose} {', '.join(names)}"
                      f"{legend}" + (f"; did you mean {match!r}?" if match is not None else ""))
