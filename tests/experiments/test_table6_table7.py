"""Tables 6 and 7's declarations: ResNet-50 at widths 1x/2x/4x after 1000 epochs (paper units) at every scale,
Table 7's runs fine-tuning on 1% and 10% of the labels, and each (width, metric) cell finding exactly its one row."""
from __future__ import annotations

import pytest

from registry import SCALES, get_experiment
from registry.published import published_cells

TABLE6 = get_experiment("table6_linear_eval")
TABLE7 = get_experiment("table7_semi_supervised")
ARCHITECTURES = {1: "ResNet-50", 2: "ResNet-50 (2x)", 4: "ResNet-50 (4x)"}
# (width, our metric) -> the paper's row: its value (Table 6), or its (table, label fraction, value) (Table 7 / B.4).
TABLE6_CELLS = {(1, "linear_top1"): 69.3, (1, "linear_top5"): 89.0, (2, "linear_top1"): 74.2,
                (2, "linear_top5"): 92.0, (4, "linear_top1"): 76.5, (4, "linear_top5"): 93.2}
TABLE7_CELLS = {
    (1, "finetune_top5_1pct"): ("Table 7", "1%", 75.5), (1, "finetune_top5_10pct"): ("Table 7", "10%", 87.8),
    (1, "finetune_top1_1pct"): ("Table B.4", "1%", 48.3), (1, "finetune_top1_10pct"): ("Table B.4", "10%", 65.6),
    (2, "finetune_top5_1pct"): ("Table 7", "1%", 83.0), (2, "finetune_top5_10pct"): ("Table 7", "10%", 91.2),
    (2, "finetune_top1_1pct"): ("Table B.4", "1%", 58.5), (2, "finetune_top1_10pct"): ("Table B.4", "10%", 71.7),
    (4, "finetune_top5_1pct"): ("Table 7", "1%", 85.8), (4, "finetune_top5_10pct"): ("Table 7", "10%", 92.6),
    (4, "finetune_top1_1pct"): ("Table B.4", "1%", 63.0), (4, "finetune_top1_10pct"): ("Table B.4", "10%", 74.4),
    # The supervised baseline the paper quotes, for ResNet-50 1x only: beside our baseline trained from scratch.
    (1, "finetune_scratch_top5_1pct"): ("Table 7", "1%", 48.4),
    (1, "finetune_scratch_top5_10pct"): ("Table 7", "10%", 80.4),
    (1, "finetune_scratch_top1_1pct"): ("Table B.4", "1%", 25.4),
    (1, "finetune_scratch_top1_10pct"): ("Table B.4", "10%", 56.4),
}


@pytest.mark.parametrize("experiment", [TABLE6, TABLE7], ids=lambda e: e.name)
@pytest.mark.parametrize("scale", list(SCALES))
def test_every_scale_resolves_the_width_ladder_of_resnet50(experiment, scale):
    runs = experiment.runs(scale)
    seed0 = [r for r in runs if r.config.seed == 0]
    assert [r.point["width"] for r in seed0] == [1, 2, 4]
    widths = [r.config.encoder.width for r in seed0]
    assert all(r.config.encoder.name == "resnet50" for r in runs)
    assert widths[1] == 2 * widths[0] and widths[2] == 4 * widths[0]
    assert len({r.config.epochs for r in runs}) == 1


def test_paper_scale_is_the_papers_setting_and_cpu_shrinks_it():
    for experiment in (TABLE6, TABLE7):
        paper = [r.config for r in experiment.runs("paper")]
        assert [(c.data.dataset, c.batch_size, c.epochs, c.encoder.width) for c in paper] == \
            [("imagenet", 4096, 1000.0, w) for w in (1.0, 2.0, 4.0)]
        cpu = [r.config for r in experiment.runs("cpu")]
        assert [(c.data.dataset, c.epochs, c.encoder.width) for c in cpu] == \
            [("cifar10", 30.0, w) for w in (0.25, 0.5, 1.0)]
    assert all("linear" in r.config.eval.protocols for r in TABLE6.runs("cpu"))


@pytest.mark.parametrize("scale", list(SCALES))
def test_table7_fine_tunes_on_both_fractions_after_table6s_pretraining(scale):
    from registry.pretraining import pretraining_key

    table6 = {pretraining_key(run.config) for run in TABLE6.runs(scale)}
    for run in TABLE7.runs(scale):
        assert "finetune" in run.config.eval.protocols
        assert run.config.eval.finetune_fractions == (0.01, 0.1)
        assert run.config.eval.finetune_subset_files == ()
        assert pretraining_key(run.config) in table6            # evaluates Table 6's checkpoint where it is done
        run.config.validate()                                   # streamed at paper scale: fine-tuning allowed


@pytest.mark.parametrize("experiment,expected", [(TABLE6, TABLE6_CELLS), (TABLE7, TABLE7_CELLS)],
                         ids=["table6", "table7"])
def test_each_cell_maps_to_exactly_its_one_published_row(experiment, expected):
    found = {}
    for point, metric, rows in published_cells(experiment):
        if metric.startswith("finetune_scratch_") and point["width"] != 1:
            assert rows == []                                   # the paper quotes its baseline for 1x only
            continue
        assert len(rows) == 1, (point, metric, rows)
        (row,) = rows
        method = "Supervised baseline" if metric.startswith("finetune_scratch_") else "SimCLR (ours)"
        assert row["method"] == method and row["architecture"] == ARCHITECTURES[point["width"]]
        if experiment is TABLE6:
            assert (row["table_or_figure"], row["metric"]) == ("Table 6", metric)
            found[(point["width"], metric)] = float(row["value"])
        else:
            assert metric.replace("finetune_scratch_", "finetune_").startswith(row["metric"] + "_")
            found[(point["width"], metric)] = (row["table_or_figure"], row["label_fraction"], float(row["value"]))
    assert found == expected
