"""eval.linear_augment (linear evaluation on crop + flip views, the paper's protocol) in the registry: a run id of its
own only when set, an estimate that pays one pass over the training split per epoch, and a deviation from the paper
that `show` and the report name where linear evaluation trains on fixed features."""
import pytest

from registry import get_experiment
from registry.deviations import LINEAR_ON_FEATURES, setting_deviations
from registry.estimate import FORWARD_VIEW_SHARE, estimate, evaluation_view_equivalents
from registry.run_id import config_hash
from simclr_core.config import RunConfig

from test_cli import cli


def _cfg(**overrides) -> RunConfig:
    return RunConfig().with_overrides({"data.dataset": "cifar10", "eval.protocols": ("linear",), "epochs": 10,
                                       "eval.linear_epochs": 90, **overrides})


def test_only_a_run_that_sets_it_gets_another_id():
    assert config_hash(_cfg()) == config_hash(_cfg(**{"eval.linear_augment": False}))
    assert config_hash(_cfg()) != config_hash(_cfg(**{"eval.linear_augment": True}))


def test_its_estimate_pays_a_forward_pass_over_the_training_split_per_epoch():
    train, test = 50_000, 10_000
    on_features = evaluation_view_equivalents(_cfg(), train, test)
    on_views = evaluation_view_equivalents(_cfg(**{"eval.linear_augment": True}), train, test)
    assert on_features == pytest.approx((train + test) * FORWARD_VIEW_SHARE)
    assert on_views == pytest.approx((90 * train + test) * FORWARD_VIEW_SHARE)
    assert estimate(_cfg(**{"eval.linear_augment": True}), "gpu").hours > estimate(_cfg(), "gpu").hours


def test_the_deviation_is_named_where_linear_evaluation_trains_on_fixed_features():
    assert setting_deviations([_cfg()]) == (LINEAR_ON_FEATURES,)
    assert setting_deviations([_cfg(**{"eval.linear_augment": True})]) == ()
    assert setting_deviations([_cfg(**{"eval.protocols": ("knn",)})]) == ()         # no linear evaluation at all
    runs = get_experiment("temperature_norm").runs("paper")
    assert setting_deviations(run.config for run in runs) == (LINEAR_ON_FEATURES,)


def test_show_lists_it_unless_the_runs_train_on_views(tmp_path):
    shown = cli("show", "temperature_norm", "--scale", "cpu", results=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"    - {LINEAR_ON_FEATURES}\n" in shown.stdout
    on_views = cli("show", "temperature_norm", "--scale", "cpu", "eval.linear_augment=true", results=tmp_path)
    assert on_views.returncode == 0, on_views.stderr
    assert LINEAR_ON_FEATURES not in on_views.stdout and "deviations from the paper:\n" in on_views.stdout


def test_without_runs_shown_the_report_judges_the_declared_setting_with_the_overrides_asked_for():
    import pandas as pd

    from reports.build import _setting_deviations

    experiment, none_shown = get_experiment("temperature_norm"), pd.DataFrame()
    assert _setting_deviations(experiment, none_shown, "cpu", {}) == (LINEAR_ON_FEATURES,)
    assert _setting_deviations(experiment, none_shown, "cpu", {"eval.linear_augment": True}) == ()
    assert _setting_deviations(experiment, none_shown, "smoke", {}) == ()       # smoke evaluates with kNN only
    assert _setting_deviations(experiment, none_shown, None, {}) == ()
