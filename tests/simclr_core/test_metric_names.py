"""The metric names a declaration may use agree with what the evaluation protocols report."""
from __future__ import annotations

from simclr_core.evaluate.protocols import PROTOCOLS
from simclr_core.evaluate.transform_probe import TASKS
from simclr_core.metric_names import METRIC_NAMES, METRIC_PREFIXES, TRANSFORM_TASKS, is_metric


def test_every_protocol_lists_its_metrics_under_its_prefix():
    assert list(METRIC_NAMES) == list(METRIC_PREFIXES) and set(METRIC_NAMES) == set(PROTOCOLS)
    for protocol, names in METRIC_NAMES.items():
        assert names and all(name.startswith(METRIC_PREFIXES[protocol]) for name in names)
    assert TRANSFORM_TASKS == tuple(TASKS)


def test_placeholders_take_fractions_and_tasks_only():
    assert is_metric("finetune_top1_1pct") and is_metric("finetune_top5_12.5pct") and is_metric("transform_color_gh")
    assert not is_metric("finetune_top1_pct") and not is_metric("finetune_top1") and not is_metric("knn_top1_10pct")
    assert not is_metric("transform_colour_gh") and not is_metric("transform_color")
