"""Each declared cell's published number, pinned cell by cell to the paper's tables (arXiv:2002.05709 v3) as typed
here, apart from the CSVs: a declaration that reads the wrong row or column (batch size for epochs, 2x for 4x, top-1
for top-5, linear for fine-tuned, top-1 for mean per-class) fails here, though its value still occurs in the CSV."""
from __future__ import annotations

import math

import pytest

from registry import get_experiment
from reports.published import published_cells

WIDTH = {1: "1x", 2: "2x", 4: "4x"}


def cells(name: str) -> dict[tuple, float]:
    """(axis values in declaration order..., our metric) -> the published value, for the cells with a number."""
    experiment = get_experiment(name)
    table = published_cells(experiment)
    table = table[table["read_as"] != "missing"]
    axes = [f"axis.{a}" for a in experiment.axes.names]
    return {(*(row[a] for a in axes), row["cell_metric"]): row["value"] for row in table.to_dict("records")}


def test_table1_both_methods():
    strengths = [(0.125, False), (0.25, False), (0.5, False), (1.0, False), (1.0, True)]
    simclr, supervised = [59.6, 61.0, 62.6, 63.2, 64.5], [77.0, 76.7, 76.5, 75.7, 75.4]
    assert cells("color_strength") == {(s, b, "linear_top1"): v for (s, b), v in zip(strengths, simclr)}
    assert cells("color_strength_supervised") == {(s, b, "supervised_top1"): v
                                                  for (s, b), v in zip(strengths, supervised)}


def test_tables_4_and_5():
    assert cells("loss_variant") == {
        ("margin_triplet", False, "linear_top1"): 50.9, ("nt_logistic", False, "linear_top1"): 51.6,
        ("margin_triplet", True, "linear_top1"): 57.5, ("nt_logistic", True, "linear_top1"): 57.9,
        ("nt_xent", False, "linear_top1"): 63.9}
    assert cells("temperature_norm") == {
        (True, 0.05, "linear_top1"): 59.7, (True, 0.1, "linear_top1"): 64.4, (True, 0.5, "linear_top1"): 60.7,
        (True, 1.0, "linear_top1"): 58.0, (False, 10.0, "linear_top1"): 57.2, (False, 100.0, "linear_top1"): 57.0}


def test_table_b1_linear_and_sqrt_scaling():
    # Table B.1, rows batch size, columns epochs 100 / 200 / 400 / 800; linear scaling, then square-root
    linear = {256: (57.5, 61.9, 64.7, 66.6), 512: (60.7, 64.0, 66.2, 67.8), 1024: (62.8, 65.3, 67.2, 68.5),
              2048: (64.0, 66.1, 68.1, 68.9), 4096: (64.6, 66.5, 68.2, 68.9), 8192: (64.8, 66.6, 67.8, 69.0)}
    sqrt = {256: (62.8, 64.3, 65.7, 66.5), 512: (63.8, 65.6, 66.7, 67.4), 1024: (64.3, 66.1, 67.2, 68.3),
            2048: (64.7, 66.8, 67.9, 68.8), 4096: (64.5, 66.8, 68.0, 69.1), 8192: (64.8, 67.0, 68.3, 69.1)}
    expected = {(b, e, scaling, "linear_top1"): v for scaling, grid in (("linear", linear), ("sqrt", sqrt))
                for b, row in grid.items() for e, v in zip((100, 200, 400, 800), row)}
    assert cells("batch_epochs") == expected


def test_table_b3_supervised_longer():
    values = {1: ((76.5, 75.6, 75.3), (76.2, 76.5, 76.7), (75.8, 75.2, 76.4)),
              4: ((78.4, 78.9, 78.7), (78.3, 78.4, 78.5), (77.9, 78.2, 78.3))}
    expected = {(w, e, a, "supervised_top1"): v for w, rows in values.items()
                for e, row in zip((90, 500, 1000), rows) for a, v in zip(("crop", "crop+color", "crop+color+blur"), row)}
    assert cells("supervised_augment") == expected


def test_figure7_dots_and_crosses_by_depth_and_width():
    dots = cells("model_width")
    assert dots[(50, 1, "linear_top1")] == 64.5 and dots[(50, 2, "linear_top1")] == 69.7
    assert dots[(50, 4, "linear_top1")] == 72.8 and dots[(18, 4, "linear_top1")] == 65.7
    assert dots[(152, 2, "linear_top1")] == 72.0 and dots[(101, 1, "linear_top1")] == 66.7
    assert cells("model_width_supervised") == {(1, "supervised_top1"): 76.5, (2, "supervised_top1"): 77.8,
                                               (4, "supervised_top1"): 78.4}


def test_table3_each_task_after_its_own_pretraining():
    assert cells("transform_prediction") == {
        ("none", "transform_color_h"): 99.3, ("none", "transform_color_gh"): 97.4,
        ("rotate", "transform_rotation_h"): 67.6, ("rotate", "transform_rotation_gh"): 25.6,
        ("noise", "transform_noise_h"): 99.5, ("noise", "transform_noise_gh"): 59.6,
        ("sobel", "transform_sobel_h"): 96.6, ("sobel", "transform_sobel_gh"): 56.3}


def test_tables_6_7_b4_and_b2_by_width_fraction_and_top_k():
    assert cells("table6_linear_eval") == {
        (1, "linear_top1"): 69.3, (2, "linear_top1"): 74.2, (4, "linear_top1"): 76.5,
        (1, "linear_top5"): 89.0, (2, "linear_top5"): 92.0, (4, "linear_top5"): 93.2}
    # Table 7 (top-5) and Table B.4 (top-1), 1% / 10%; the supervised baseline (ResNet-50 1x only)
    top5, top1 = {1: (75.5, 87.8), 2: (83.0, 91.2), 4: (85.8, 92.6)}, {1: (48.3, 65.6), 2: (58.5, 71.7), 4: (63.0, 74.4)}
    expected = {(w, f"finetune_{k}_{pct}"): v for k, grid in (("top5", top5), ("top1", top1))
                for w, row in grid.items() for pct, v in zip(("1pct", "10pct"), row)}
    expected.update({(1, "finetune_scratch_top5_1pct"): 48.4, (1, "finetune_scratch_top5_10pct"): 80.4,
                     (1, "finetune_scratch_top1_1pct"): 25.4, (1, "finetune_scratch_top1_10pct"): 56.4})
    assert cells("table7_semi_supervised") == expected
    # Table B.2: per width top-1 / top-5 at 1%, 10%, 100%; Appendix B.2's text: from scratch at 2x and 4x
    broader = {1: (49.4, 76.6, 66.1, 88.1, 76.0, 93.1), 2: (59.4, 83.7, 71.8, 91.2, 79.1, 94.8),
               4: (64.1, 86.6, 74.8, 92.8, 80.4, 95.4)}
    names = [f"finetune_{k}_{pct}" for pct in ("1pct", "10pct", "100pct") for k in ("top1", "top5")]
    expected = {(w, m): v for w, row in broader.items() for m, v in zip(names, row)}
    expected.update({(2, "finetune_scratch_top1_100pct"): 77.8, (2, "finetune_scratch_top5_100pct"): 93.9,
                     (4, "finetune_scratch_top1_100pct"): 78.4, (4, "finetune_scratch_top5_100pct"): 94.2})
    assert cells("table_b2_broader_augment") == expected


DATASETS = ("food101", "cifar10", "cifar100", "birdsnap", "sun397", "stanford_cars", "fgvc_aircraft", "dtd",
            "oxford_pets", "caltech101", "flowers102")
MEAN_PER_CLASS = {"fgvc_aircraft", "oxford_pets", "caltech101", "flowers102"}
# Table 8 (ResNet-50 4x) and Table B.5 (1x), without VOC2007: rows linear SimCLR, linear supervised, fine-tuned SimCLR,
# fine-tuned supervised, random init (fine-tuned)
TABLE8 = ((76.9, 95.3, 80.2, 48.4, 65.9, 60.0, 61.2, 78.9, 89.2, 93.9, 95.0),
          (75.2, 95.7, 81.2, 56.4, 64.9, 68.8, 63.8, 78.7, 92.3, 94.1, 94.2),
          (89.4, 98.6, 89.0, 78.2, 68.1, 92.1, 87.0, 77.8, 92.1, 94.1, 97.6),
          (88.7, 98.3, 88.7, 77.8, 67.0, 91.4, 88.0, 78.8, 93.2, 94.2, 98.0),
          (88.3, 96.0, 81.9, 77.0, 53.7, 91.3, 84.8, 64.1, 82.7, 72.5, 92.5))
TABLE_B5 = ((68.4, 90.6, 71.6, 37.4, 58.8, 50.3, 50.3, 74.5, 83.6, 90.3, 91.2),
            (72.3, 93.6, 78.3, 53.7, 61.9, 66.7, 61.0, 74.9, 91.5, 94.5, 94.7),
            (88.2, 97.7, 85.9, 75.9, 63.5, 91.3, 88.1, 73.2, 89.2, 92.1, 97.0),
            (88.3, 97.5, 86.4, 75.8, 64.3, 92.1, 86.0, 74.6, 92.1, 93.3, 97.6),
            (86.9, 95.9, 80.2, 76.1, 53.6, 91.4, 85.9, 64.8, 81.5, 72.6, 92.0))


@pytest.mark.parametrize("simclr, baselines, rows", [("table8_transfer", "table8_transfer_supervised", TABLE8),
                                                      ("table_b5_transfer", "table_b5_transfer_supervised", TABLE_B5)])
def test_transfer_tables_by_dataset_protocol_method_and_kind(simclr, baselines, rows):
    def kind(dataset: str) -> str:
        return "mean_per_class_acc" if dataset in MEAN_PER_CLASS else "top1"

    def row(values, prefix):
        return {(d, f"{prefix}_{kind(d)}"): v for d, v in zip(DATASETS, values)}

    linear, linear_sup, tuned, tuned_sup, scratch = rows
    assert cells(simclr) == {**row(linear, "transfer_linear"), **row(tuned, "transfer_finetune")}
    assert cells(baselines) == {**row(linear_sup, "transfer_linear"), **row(tuned_sup, "transfer_finetune"),
                                **row(scratch, "transfer_scratch")}


def test_appendix_b9_cells():
    assert cells("b9_batch_epochs") == {(1024, 100, "linear_top1"): 85.0, (1024, 1000, "linear_top1"): 94.0}
    assert cells("b9_temperature_batch") == {(0.5, 1024, "linear_top1"): 94.0}


def test_figure5_is_row_first_column_second():
    grid = cells("augment_pairs")
    assert grid[("crop", "color", "linear_top1")] == 56.3 and grid[("color", "crop", "linear_top1")] == 55.8
    assert grid[("sobel", "crop", "linear_top1")] == 46.2 and grid[("crop", "sobel", "linear_top1")] == 46.0
    assert grid[("blur", "blur", "linear_top1")] == 2.6 and not any(math.isnan(v) for v in grid.values())
