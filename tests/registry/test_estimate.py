"""The planner's cost model: multi-crop's small views count by area."""
import pytest

from registry.estimate import estimate, train_view_equivalents
from simclr_core.config import RunConfig


def _cfg(**overrides) -> RunConfig:
    return RunConfig().with_overrides({"data.dataset": "cifar10", "eval.protocols": (), "epochs": 10, **overrides})


def test_small_views_cost_their_area_and_count_as_views():
    two = estimate(_cfg(), "gpu")
    multi = estimate(_cfg(**{"augment.local_crops": 4}), "gpu")         # 4 views of 16 px next to two of 32
    assert train_view_equivalents(_cfg(**{"augment.local_crops": 4})) == 3.0
    assert multi.steps == two.steps and multi.views == 3 * two.views
    assert multi.hours == pytest.approx(1.5 * two.hours, rel=1e-12)
    sized = estimate(_cfg(**{"augment.local_crops": 2, "augment.local_crop_size": 8}), "gpu")
    assert sized.hours == pytest.approx((2 + 2 / 16) / 2 * two.hours, rel=1e-12)
