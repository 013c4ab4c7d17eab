"""Declarations: axis expansion, declaration-time checks, and resolution into runs at a scale."""
from __future__ import annotations

import pytest

from registry import Experiment, Published, cases, get_experiment, grid, zip_axes
from registry.scales import SCALES, Scale
from simclr_core.config import RunConfig
from simclr_core.validation import ConfigError

PUBLISHED = Published("table5_temperature_l2norm.csv", columns={})


def declare(**changes) -> Experiment:
    fields = dict(name="toy", artefact="tab5", title="a toy ablation", metric="linear_top1", published=PUBLISHED,
                  deviations=("a toy",), base={"optim.lr_scaling": "linear"},
                  axes=grid(loss__temperature=(0.1, 0.5)))
    fields.update(changes)
    return Experiment(**fields)


# ---- axes ----------------------------------------------------------------------------------------------
def test_grid_is_the_cartesian_product_first_axis_slowest():
    axes = grid(a=(1, 2, 3), b=("x", "y"))
    assert len(axes) == 6
    assert list(axes)[:3] == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}]


def test_zip_pairs_values_and_needs_equal_lengths():
    axes = zip_axes(batch_size=(256, 512), epochs=(100, 200))
    assert list(axes) == [{"batch_size": 256, "epochs": 100}, {"batch_size": 512, "epochs": 200}]
    with pytest.raises(ConfigError, match="equally long"):
        zip_axes(batch_size=(256, 512), epochs=(100,))


def test_double_underscore_names_are_dotted_keys():
    assert grid(loss__temperature=(0.1,)).names == ("loss.temperature",)


def test_cases_and_concatenation():
    axes = grid(k=("linear",), d=(32, 64)) + cases({"k": "none", "d": 2048})
    assert len(axes) == 3 and list(axes)[-1] == {"k": "none", "d": 2048}
    with pytest.raises(ConfigError, match="names differ"):
        grid(k=(1,)) + grid(j=(1,))
    with pytest.raises(ConfigError, match="does not name the axes"):
        cases({"a": 1}, {"b": 2})


def test_repeated_points_and_empty_axes_are_refused():
    with pytest.raises(ConfigError, match="declared twice"):
        grid(a=(1, 1))
    with pytest.raises(ConfigError, match="non-empty"):
        grid(a=())
    with pytest.raises(ConfigError, match="non-empty"):
        grid(a="crop")   # a string is not a list of values


def test_augment_pairs_has_49_runs_and_the_diagonal_is_one_transform():
    experiment = get_experiment("augment_pairs")
    runs = experiment.runs("smoke")
    assert len(runs) == 49 == len({r.run_id for r in runs})
    by_label = {r.label: r.config.augment for r in runs}
    assert by_label["color+color"].ops == ("color",)
    assert by_label["crop+color"].ops == ("crop", "color")
    assert by_label["color+crop"].ops == ("color", "crop")
    assert all(a.one_branch for a in by_label.values())


# ---- declaration-time checks -----------------------------------------------------------------------------
def test_unknown_axis_key_is_refused_when_declared():
    with pytest.raises(ConfigError, match="unknown config key 'loss.temprature'"):
        declare(axes=grid(loss__temprature=(0.1,)))


def test_unknown_base_key_is_refused_when_declared():
    with pytest.raises(ConfigError, match="unknown config key"):
        declare(base={"optim.lr_scaling": "linear", "optim.lr": 1.0})


def test_lr_scaling_must_be_stated():
    with pytest.raises(ConfigError, match="learning-rate scaling"):
        declare(base={})
    declare(base={}, axes=grid(optim__lr_scaling=("linear", "sqrt")))   # on an axis is fine


@pytest.mark.parametrize("changes, message", [
    ({"deviations": ()}, "deviations"),
    ({"deviations": "one string"}, "deviations"),
    ({"metric": ""}, "has no metric: name the final.json key"),
    ({"metrics": "knn_top1"}, "metrics='knn_top1' must be a tuple"),
    ({"name": "Bad-Name"}, "lower_snake_case"),
    ({"seeds": (0, 0)}, "seeds"),
    ({"published": Published("x.csv", columns={"temperature": "nope"})}, r"published names axes \['nope'\]"),
    ({"published": Published("x.csv", values={"nope": {1: "a"}})}, r"published names axes \['nope'\]"),
    ({"published": Published("x.csv", metrics={"knn_top5": {}})}, r"names \['knn_top5'\], which are not"),
    ({"axes": grid(nope__temperature=(0.1,))}, "nope"),
])
def test_provenance_and_shape_are_required(changes, message):
    with pytest.raises(ConfigError, match=message):
        declare(**changes)


@pytest.mark.parametrize("changes, message", [
    ({"metric": "knn_tpo1"}, "experiment 'toy': metric='knn_tpo1' is not a metric of any evaluation protocol: the "
                             "knn protocol reports knn_top1, knn_top5; did you mean 'knn_top1'?"),
    ({"metrics": ("knn_top1", "finetune_tpo1_10pct")}, "experiment 'toy': metrics='finetune_tpo1_10pct' .* did you "
                                                       "mean 'finetune_top1_10pct'\\?"),
    ({"metrics": ("transform_rotaton_h",)}, "did you mean 'transform_rotation_h'\\?"),
    ({"metric": "accuracy"}, "'accuracy' is not a metric of any evaluation protocol; they report knn_top1, "),
])
def test_a_metric_no_protocol_reports_is_refused_naming_the_likely_one(changes, message):
    with pytest.raises(ConfigError, match=message):
        declare(**changes)


def test_metrics_of_every_protocol_are_accepted():
    metrics = ("knn_top5", "linear_top5", "finetune_top5_12.5pct", "finetune_scratch_top1_100pct",
               "transform_sobel_random_guess", "transfer_scratch_mean_per_class_acc", "supervised_top1")
    assert declare(metrics=metrics).metrics == metrics


def test_an_experiment_of_ones_own_needs_no_published_numbers():
    own = declare(published=None, deviations=(), artefact="", metrics=("knn_top1", "linear_top1"))
    assert own.artefact == own.name and own.published_metrics == ()
    assert own.all_metrics == ("linear_top1", "knn_top1")      # the ranking metric first, each once


def test_evaluation_only_axes_are_those_that_change_only_eval_keys():
    experiment = declare(axes=grid(loss__temperature=(0.1, 0.5), eval__finetune_fractions=((0.01,), (0.1,))))
    assert experiment.evaluation_only_axes() == ("eval.finetune_fractions",)
    assert declare().evaluation_only_axes() == ()


def test_a_setting_replaces_the_scales_base_at_every_scale():
    from experiments.base import cifar10_base
    experiment = declare(setting=cifar10_base)
    cfg = experiment.resolve("paper", {"loss.temperature": 0.1}, seed=0)
    assert cfg.data.dataset == "cifar10" and cfg.encoder.stem == "cifar" and cfg.encoder.name == "resnet50"
    assert declare().resolve("paper", {"loss.temperature": 0.1}, seed=0).data.dataset == "imagenet"


def test_a_setting_may_apply_at_some_scales_only():
    from experiments.base import cifar10_base
    experiment = declare(setting=cifar10_base, setting_scales=("smoke", "cpu", "gpu"))
    point = {"loss.temperature": 0.1}
    assert experiment.resolve("paper", point, seed=0).data.dataset == "imagenet"            # the scale's own
    everywhere = declare(setting=cifar10_base)
    for scale in ("smoke", "cpu", "gpu"):
        assert experiment.resolve(scale, point, seed=0) == everywhere.resolve(scale, point, seed=0)
    with pytest.raises(ConfigError, match=r"setting_scales names \['huge'\], not declared scales; choose from "
                                          r"smoke, cpu, gpu, paper"):
        declare(setting=cifar10_base, setting_scales=("huge",)).resolve("cpu", point, seed=0)


# ---- resolution -----------------------------------------------------------------------------------------
def test_runs_are_validated_configs_with_distinct_ids():
    runs = declare(seeds=(0, 1)).runs("smoke")
    assert len(runs) == 4 == len({r.run_id for r in runs})
    assert {r.config.seed for r in runs} == {0, 1}
    assert all(r.run_id.startswith("toy/") for r in runs)
    assert [("+seed1" in r.label) for r in runs] == [False, True, False, True]   # seed 0 keeps its one-seed id
    assert {r.run_id for r in runs if r.config.seed == 0} == {r.run_id for r in declare().runs("smoke")}
    assert all(isinstance(r.config, RunConfig) and r.scale == "smoke" for r in runs)


def test_resolution_order_scale_then_experiment_then_axis_then_shrink_then_overrides():
    smoke = SCALES["smoke"]
    experiment = declare(base={"optim.lr_scaling": "linear", "encoder.name": "resnet34"},
                         axes=grid(batch_size=(256, 8192)))
    runs = experiment.runs(smoke, overrides={"eval.knn_k": 7})
    cfg = runs[0].config
    assert cfg.data.dataset == "cifar10_subset"              # scale default
    assert cfg.encoder.name == "resnet34"                    # experiment base beats the scale default
    assert [r.config.batch_size for r in runs] == [8, 256]   # axis in paper units, then shrunk (/32)
    assert cfg.max_steps == smoke.fixed["max_steps"]          # fixed compute knob
    assert cfg.eval.knn_k == 7                               # command-line override last


def test_a_seed_override_replaces_the_declared_seeds():
    runs = declare(seeds=(0, 1)).runs("smoke", overrides={"seed": "5"})
    assert [r.config.seed for r in runs] == [5, 5] and len({r.run_id for r in runs}) == 2


def test_unknown_override_key_raises_before_anything_runs():
    with pytest.raises(ConfigError, match="unknown config key 'loss.tmp'"):
        declare().runs("smoke", overrides={"loss.tmp": 1})


def test_bad_override_value_names_the_point():
    with pytest.raises(ConfigError, match=r"toy at scale smoke, point .*loss.temperature"):
        declare().runs("smoke", overrides={"loss.temperature": -1})


def test_an_override_that_collapses_an_axis_is_refused():
    with pytest.raises(ConfigError, match="same config, so to one run id: the override loss.temperature=0.3 sets "
                                          "what the axis varies$"):
        declare().runs("smoke", overrides={"loss.temperature": "0.3"})


@pytest.mark.parametrize("axes, why", [
    # no run id holds how often a run logs: both points would be one run
    (grid(log_every_steps=(10, 20)), "they differ only in log_every_steps, which no run id holds (how a run is "
                                     "carried out, not what it trains: registry/run_id.py)"),
    (grid(batch_size=(256, 260)), "scale 'smoke' shrinks batch_size of both to one value"),     # 8 and 8.125 -> 8
])
def test_two_points_of_one_run_id_say_why(axes, why):
    with pytest.raises(ConfigError) as refused:
        declare(axes=axes).runs("smoke")
    assert str(refused.value).endswith("resolve to the same config, so to one run id: " + why)


def test_a_scale_may_not_fix_a_key_the_experiment_varies():
    scale = Scale(name="odd", summary="fixes the temperature", base=RunConfig, fixed={"loss.temperature": 1.0})
    with pytest.raises(ConfigError, match="never the structure"):
        declare().runs(scale)


def test_unknown_scale_lists_the_choices():
    with pytest.raises(ConfigError, match="'smoke', 'cpu', 'gpu', 'paper'"):
        declare().runs("huge")


def test_scales_keep_every_axis_point_of_figure_9():
    experiment = get_experiment("batch_epochs")
    for scale in SCALES:
        runs = experiment.runs(scale, seeds=[0])
        assert len(runs) == 48
        batches = sorted({r.config.batch_size for r in runs})
        epochs = sorted({r.config.epochs for r in runs})
        assert len(batches) == 6 and len(epochs) == 4, (scale, batches, epochs)
    paper = {r.label: r.config for r in experiment.runs("paper")}
    assert paper["4096+100+sqrt"].peak_lr() == pytest.approx(paper["4096+100+linear"].peak_lr()) == 4.8


def test_scale_factors_must_be_positive():
    with pytest.raises(ConfigError, match="positive"):
        Scale(name="zero", summary="", base=RunConfig, epochs_factor=0.0)


def test_a_scale_settles_the_protocols_an_experiments_metrics_add():
    plain = declare()
    tuned = declare(metrics=("finetune_top1_10pct",))
    smoke_plain, smoke_tuned = plain.runs("smoke")[0].config, tuned.runs("smoke")[0].config
    assert smoke_tuned.eval.protocols == ("knn", "finetune") and smoke_tuned.eval.finetune_epochs == 1
    assert smoke_plain.eval.protocols == ("knn",) and smoke_plain.eval.finetune_epochs == RunConfig().eval.finetune_epochs
    with pytest.raises(ConfigError, match=r"varies \['eval.finetune_epochs'\], which scale 'smoke' fixes"):
        declare(metrics=("finetune_top1_10pct",), axes=grid(eval__finetune_epochs=(5, 10))).runs("smoke")


def test_a_knn_metric_is_evaluated_at_every_scale_and_linear_only_where_the_scale_says():
    # The paper scale evaluates linear only; an experiment ranked by kNN must still get kNN there (a sweep of it
    # needs its objective, the report its column). Linear evaluation stays the scale's choice: smoke stands kNN in.
    by_knn = declare(metric="knn_top1", published=None, deviations=(), artefact=None)
    assert declare().runs("paper")[0].config.eval.protocols == ("linear",)
    assert by_knn.runs("paper")[0].config.eval.protocols == ("linear", "knn")
    assert by_knn.runs("smoke")[0].config.eval.protocols == ("knn",)
    assert declare(metrics=("linear_top1",)).runs("smoke")[0].config.eval.protocols == ("knn",)
