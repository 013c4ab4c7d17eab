"""Appendix B.9's two declarations (Figures B.7 and B.8): every scale keeps every point distinct and starts from the
CIFAR-10 setting, paper scale included; the paper's two CIFAR-10 numbers land on the cells they stand for; and
Figure B.8's tau-0.5 row is Figure B.7's 1000-epoch row, config for config, so one results folder pretrains it
once."""
from __future__ import annotations

import pytest

from registry import SCALES, get_experiment
from registry.pretraining import pretraining_key
from registry.published import published_cells

B7 = get_experiment("b9_batch_epochs")
B8 = get_experiment("b9_temperature_batch")
BATCH_SIZES = [256, 512, 1024, 2048, 4096]


@pytest.mark.parametrize("experiment", [B7, B8], ids=lambda e: e.name)
@pytest.mark.parametrize("scale", list(SCALES))
def test_every_scale_keeps_the_five_batch_sizes_apart_in_order(experiment, scale):
    runs = experiment.runs(scale, seeds=(0,))
    assert len({r.run_id for r in runs}) == len(runs) == len(experiment.axes)
    by_point = {r.point["batch_size"]: r.config.batch_size for r in runs}
    assert sorted(by_point) == BATCH_SIZES
    scaled = [by_point[b] for b in BATCH_SIZES]
    assert scaled == sorted(set(scaled)), scaled          # distinct and in the paper's order


@pytest.mark.parametrize("experiment", [B7, B8], ids=lambda e: e.name)
@pytest.mark.parametrize("scale", list(SCALES))
def test_every_scale_starts_from_appendix_b9s_cifar10_setting(experiment, scale):
    for run in experiment.runs(scale, seeds=(0,)):
        cfg = run.config
        assert cfg.data.dataset == ("cifar10_subset" if scale == "smoke" else "cifar10")
        assert cfg.encoder.stem == "cifar"
        assert tuple(cfg.augment.ops) == ("crop", "color") and cfg.augment.color_strength == 0.5   # no blur
        assert (cfg.optim.name, cfg.optim.lr_scaling, cfg.optim.base_lr) == ("lars", "linear", 1.0)
        assert "knn" in cfg.eval.protocols


def test_paper_scale_is_the_papers_own_cifar10_runs():
    for run in B7.runs("paper") + B8.runs("paper"):
        cfg = run.config
        assert (cfg.encoder.name, cfg.encoder.width, cfg.data.dataset) == ("resnet50", 1.0, "cifar10")
        assert cfg.batch_size == run.point["batch_size"]
        assert "linear" in cfg.eval.protocols
    assert {r.config.epochs for r in B7.runs("paper")} == {100.0, 300.0, 500.0, 1000.0}
    assert {r.config.loss.temperature for r in B7.runs("paper")} == {0.5}
    assert {r.config.epochs for r in B8.runs("paper")} == {1000.0}
    assert {r.config.loss.temperature for r in B8.runs("paper")} == {0.1, 0.5, 1.0}


def _found(experiment) -> dict[tuple, tuple[str, str]]:
    found = {}
    for point, metric, rows in published_cells(experiment):
        assert metric == "linear_top1" and len(rows) <= 1, (point, rows)
        if rows:
            found[tuple(point.values())] = (rows[0]["item"], rows[0]["value"])
    return found


def test_figure_b7_finds_the_readers_85_and_the_best_models_94_and_nothing_else():
    assert _found(B7) == {(1024, 100): ("batch 1024, 100 epochs", "85"),
                          (1024, 1000): ("best SimCLR CIFAR-10 model", "94.0")}


def test_figure_b8_finds_the_best_models_94_at_temperature_half_and_batch_1024_only():
    assert _found(B8) == {(0.5, 1024): ("best SimCLR CIFAR-10 model", "94.0")}


@pytest.mark.parametrize("scale", list(SCALES))
def test_figure_b8s_half_row_is_figure_b7s_longest_row_so_it_pretrains_once(scale):
    longest = {r.point["batch_size"]: r.config for r in B7.runs(scale, seeds=(0,)) if r.point["epochs"] == 1000}
    half = {r.point["batch_size"]: r.config for r in B8.runs(scale, seeds=(0,)) if r.point["loss.temperature"] == 0.5}
    assert longest.keys() == half.keys() == set(BATCH_SIZES)
    assert all(longest[b] == half[b] and pretraining_key(longest[b]) == pretraining_key(half[b]) for b in half)
    others = [r.config for r in B8.runs(scale, seeds=(0,)) if r.point["loss.temperature"] != 0.5]
    assert not {pretraining_key(c) for c in others} & {pretraining_key(c) for c in longest.values()}
