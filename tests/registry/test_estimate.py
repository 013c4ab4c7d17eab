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


def test_paper_scale_uses_the_measured_h200_rate_or_the_users_own():
    from registry.estimate import PAPER_GPU_VIEWS_PER_S
    cfg = RunConfig().with_overrides({"data.dataset": "imagenet", "encoder.name": "resnet50", "batch_size": 256,
                                      "epochs": 1, "eval.protocols": (), "data.image_size": 224})
    measured = estimate(cfg, "gpu")
    assert PAPER_GPU_VIEWS_PER_S == 2 * 2_429                           # images/s of the H200 step, two views each
    assert measured.hours == pytest.approx(2 * 256 * measured.steps / PAPER_GPU_VIEWS_PER_S / 3600, rel=1e-9)
    assert estimate(cfg, "gpu", views_per_s=PAPER_GPU_VIEWS_PER_S / 2).hours == pytest.approx(2 * measured.hours)


@pytest.mark.parametrize("args, needle", [
    (("--dry-run", "--gpu-images-per-s", "1200"), "2,400 ResNet-50-1x-224px views/s per GPU (given by"),
    (("--dry-run",), "measured on one NVIDIA H200"),
])
def test_dry_run_names_where_its_gpu_rate_comes_from(args, needle, capsys, tmp_path, monkeypatch):
    from registry.__main__ import main
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(tmp_path))
    assert main(["run", "loss_variant", "--scale", "paper", *args]) == 0
    assert needle in capsys.readouterr().out


@pytest.mark.parametrize("args, needle", [
    (("--dry-run", "--gpu-images-per-s", "0"), "'0' is not a positive number"),
    (("--gpu-images-per-s", "100"), "only applies with --dry-run"),
])
def test_a_bad_gpu_rate_is_refused(args, needle, capsys, tmp_path, monkeypatch):
    from registry.__main__ import main
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(tmp_path))
    try:
        code = main(["run", "loss_variant", "--scale", "paper", *args])
    except SystemExit as exc:
        code = exc.code
    assert code == 2 and needle in capsys.readouterr().err
