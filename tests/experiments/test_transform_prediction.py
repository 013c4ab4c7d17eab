"""Table 3's declaration: its 8 published cells are exactly the paper's diagonal (each task after the pretraining
that added its transformation), and every scale resolves it to runs that probe all four tasks on images held in
memory."""
from __future__ import annotations


import pytest
import torch

from registry import SCALES, get_experiment
from registry.published import load_table, published_cells
from simclr_core.data.feed import resolve_loader

EXPERIMENT = get_experiment("transform_prediction")
# (added transformation, our metric) -> (what_to_predict, representation) of its row in the paper's CSV
PAPER_CELLS = {
    ("none", "transform_color_h"): ("color vs grayscale", "h"),
    ("none", "transform_color_gh"): ("color vs grayscale", "g(h)"),
    ("rotate", "transform_rotation_h"): ("rotation", "h"),
    ("rotate", "transform_rotation_gh"): ("rotation", "g(h)"),
    ("noise", "transform_noise_h"): ("orig. vs corrupted", "h"),
    ("noise", "transform_noise_gh"): ("orig. vs corrupted", "g(h)"),
    ("sobel", "transform_sobel_h"): ("orig. vs Sobel filtered", "h"),
    ("sobel", "transform_sobel_gh"): ("orig. vs Sobel filtered", "g(h)"),
}


def test_exactly_the_papers_eight_cells_map_each_to_one_row():
    cells = published_cells(EXPERIMENT)
    assert len(cells) == 4 * 8               # every pretraining x every task/representation metric
    assert all(len(rows) <= 1 for _, _, rows in cells)
    found = {(point["added_transform"], metric): rows[0] for point, metric, rows in cells if rows}
    assert set(found) == set(PAPER_CELLS)
    for key, row in found.items():
        assert (row["what_to_predict"], row["representation"]) == PAPER_CELLS[key]
    # the 8 cells cover every row of the CSV
    table = load_table(EXPERIMENT.published.file)
    assert len(table) == 8 and {(r["what_to_predict"], r["representation"]) for r in table} == set(PAPER_CELLS.values())


def test_random_guesses_are_reported_metrics_but_not_published_cells():
    assert {f"transform_{t}_random_guess" for t in ("color", "rotation", "noise", "sobel")} <= set(EXPERIMENT.metrics)
    assert set(EXPERIMENT.published_metrics) == {metric for _, metric in PAPER_CELLS}


@pytest.mark.parametrize("scale", list(SCALES))
def test_every_scale_adds_one_op_and_probes_all_tasks(scale):
    runs = EXPERIMENT.runs(scale, seeds=(0,))
    ops = {run.point["added_transform"]: run.config.augment.ops for run in runs}
    assert ops == {"none": ("crop", "color"), "rotate": ("crop", "color", "rotate"),
                   "noise": ("crop", "color", "noise"), "sobel": ("crop", "color", "sobel")}
    # each view gets the added op at random: rotation uniform over the 4 angles, noise and Sobel with p = 0.5
    probs = {run.point["added_transform"]: (run.config.augment.rotate_prob, run.config.augment.noise_prob,
                                            run.config.augment.sobel_prob) for run in runs}
    assert probs == {"none": (1.0, 1.0, 1.0), "rotate": (0.75, 1.0, 1.0), "noise": (1.0, 0.5, 1.0),
                     "sobel": (1.0, 1.0, 0.5)}
    for run in runs:
        cfg = run.config
        assert "transform_probe" in cfg.eval.protocols
        assert set(cfg.eval.transform_tasks) == {"color", "rotation", "noise", "sobel"}
        assert resolve_loader(cfg.data) == ("stream" if scale == "paper" else "resident")
        assert cfg.head.out_dim is None and cfg.optim.lr_scaling == "linear"     # g(h) as wide as h


def test_g_of_h_is_as_wide_as_h():
    from simclr_core.models import build_model

    cfg = EXPERIMENT.runs("smoke", seeds=(0,))[0].config
    model = build_model(cfg.encoder, cfg.head, 32)
    h, z = model.eval()(torch.zeros(2, 3, 32, 32))
    assert h.shape == z.shape == (2, model.encoder.feature_dim)


def test_the_paper_scale_is_the_papers_imagenet_and_the_others_the_cifar10_setting():
    paper = EXPERIMENT.runs("paper")[0].config
    assert (paper.data.dataset, paper.encoder.name, paper.encoder.width) == ("imagenet", "resnet50", 1.0)
    for scale in ("smoke", "cpu", "gpu"):
        cfg = EXPERIMENT.runs(scale)[0].config
        assert cfg.data.dataset.startswith("cifar10") and cfg.augment.color_strength == 0.5 and "blur" not in cfg.augment.ops
