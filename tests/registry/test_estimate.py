"""The planner's cost model: multi-crop's small views count by area; hours come from the measured rate closest
to the run's model, naming its device."""
import pytest

from registry.estimate import (CPU_REFERENCE, CPU_WITHOUT_BF16, H200_RESNET18_CIFAR, H200_RESNET50_224,
                               estimate, total, train_view_equivalents)
from simclr_core.config import RunConfig
from simclr_core.validation import ConfigError


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


def test_a_supervised_run_counts_the_one_view_its_model_reads():
    contrastive, supervised = estimate(_cfg(), "gpu"), estimate(_cfg(method="supervised"), "gpu")
    assert train_view_equivalents(_cfg(method="supervised")) == 1.0
    assert supervised.steps == contrastive.steps and 2 * supervised.views == contrastive.views
    assert supervised.hours == pytest.approx(contrastive.hours / 2, rel=1e-12)


def test_a_supervised_run_s_memory_holds_one_view_s_activations_and_inputs():
    from registry.run_memory import estimate_run_memory

    contrastive = estimate_run_memory(_cfg(batch_size=128), "cpu")
    supervised = estimate_run_memory(_cfg(batch_size=128, method="supervised"), "cpu")
    one_view = 128 * 3 * 32 * 32 * 4                        # float32 views; uint8 images on top of either
    assert contrastive.inputs - supervised.inputs == one_view
    assert supervised.activations == pytest.approx(contrastive.activations / 2, rel=0.05)
    assert supervised.loss == 0 < contrastive.loss


def test_paper_scale_uses_the_measured_h200_rate_or_the_users_own():
    from registry.estimate import PAPER_GPU_VIEWS_PER_S
    cfg = RunConfig().with_overrides({"data.dataset": "imagenet", "encoder.name": "resnet50", "batch_size": 256,
                                      "epochs": 1, "eval.protocols": (), "data.image_size": 224})
    measured = estimate(cfg, "gpu")
    assert PAPER_GPU_VIEWS_PER_S == 2 * 2_429                           # images/s of the H200 step, two views each
    assert measured.hours == pytest.approx(2 * 256 * measured.steps / PAPER_GPU_VIEWS_PER_S / 3600, rel=1e-9)
    assert estimate(cfg, "gpu", views_per_s=PAPER_GPU_VIEWS_PER_S / 2).hours == pytest.approx(2 * measured.hours)
    assert measured.rate is H200_RESNET50_224 and measured.rate.images_per_s == 2_429


def _cifar_resnet(name: str, width: float = 1.0) -> RunConfig:
    return RunConfig().with_overrides({"data.dataset": "cifar10", "encoder.name": name, "encoder.width": width,
                                      "encoder.stem": "cifar", "batch_size": 512, "epochs": 100})


def test_a_32px_resnet18_on_a_gpu_is_timed_from_the_27000_images_per_s_measured_in_train():
    cfg = _cifar_resnet("resnet18").with_overrides({"eval.protocols": ("knn", "linear")})
    cost = estimate(cfg, "gpu")
    assert cost.rate is H200_RESNET18_CIFAR and cost.rate.images_per_s == 27_000
    assert cost.steps == 100 * (50_000 // 512)
    eval_views = 2 * (50_000 + 10_000) / 3                 # one feature pass per protocol, a third of a view each
    assert cost.hours == pytest.approx((2 * 512 * cost.steps + eval_views) / (2 * 27_000) / 3600, rel=1e-9)
    assert "one NVIDIA H200" in cost.rate.describe() and "ResNet-18 x1 CIFAR 32 px" in cost.rate.describe()


@pytest.mark.parametrize("name, width, entry", [
    ("resnet34", 1.0, H200_RESNET18_CIFAR),     # 0.29 of a 224 px ResNet-50 view: nearer ResNet-18's 0.14
    ("resnet50", 1.0, H200_RESNET18_CIFAR),     # 0.33
    ("resnet18", 2.0, H200_RESNET50_224),       # 0.58: nearer 1 than 0.14 by ratio
    ("resnet50", 2.0, H200_RESNET50_224),       # 1.31
])
def test_the_gpu_entry_closest_in_cost_is_used_and_flops_scaled_from(name, width, entry):
    cfg = _cifar_resnet(name, width).with_overrides({"eval.protocols": ()})
    cost = estimate(cfg, "gpu")
    assert cost.rate is entry
    seconds_per_view = cost.hours * 3600 / cost.views
    assert seconds_per_view == pytest.approx(cost.relative_cost / entry.relative_cost / (2 * entry.images_per_s))


@pytest.fixture
def cpu_has_bf16(monkeypatch):
    """Set whether this machine's CPU has native bf16, which decides the arithmetic of precision="auto"."""
    def set_to(native: bool) -> None:
        monkeypatch.setattr("simclr_core.precision.cpu_supports_bf16", lambda: native)
    return set_to


def test_cpu_runs_use_the_reference_cpu_whatever_the_model(cpu_has_bf16):
    cpu_has_bf16(True)
    for cfg in (_cifar_resnet("resnet18", 0.25), _cifar_resnet("resnet152", 2.0)):
        assert estimate(cfg, "cpu").rate is CPU_REFERENCE
    assert CPU_REFERENCE.images_per_s == 857 and "2-core reference CPU" in CPU_REFERENCE.describe()


@pytest.mark.parametrize("native_bf16, precision, entry", [
    (True, "auto", CPU_REFERENCE),
    (True, "bf16", CPU_REFERENCE),
    (True, "no", CPU_WITHOUT_BF16),        # fp32 asked for: timed as fp32 even where bf16 would run
    (False, "auto", CPU_WITHOUT_BF16),     # auto falls back to fp32 on this CPU
    (False, "bf16", CPU_WITHOUT_BF16),     # emulated bf16 is no faster than fp32
])
def test_cpu_runs_are_timed_in_the_arithmetic_they_will_train_in_on_this_cpu(cpu_has_bf16, native_bf16, precision,
                                                                             entry):
    cpu_has_bf16(native_bf16)
    cfg = _cifar_resnet("resnet18", 0.25).with_overrides({"precision": precision, "eval.protocols": ()})
    cost = estimate(cfg, "cpu")
    assert cost.rate is entry
    assert cost.hours == pytest.approx(2 * 512 * cost.steps / (2 * entry.images_per_s) / 3600, rel=1e-9)
    assert ("bf16" if entry is CPU_REFERENCE else "fp32") in cost.rate.describe()


def test_an_fp32_cpu_run_takes_as_much_longer_as_the_measured_rates_differ(cpu_has_bf16):
    cfg = _cifar_resnet("resnet18", 0.25)
    cpu_has_bf16(True)
    bf16 = estimate(cfg, "cpu").hours
    cpu_has_bf16(False)
    fp32 = estimate(cfg, "cpu").hours
    assert fp32 / bf16 == pytest.approx(CPU_REFERENCE.images_per_s / CPU_WITHOUT_BF16.images_per_s, rel=1e-9)
    assert 2 < fp32 / bf16 < 5 and "without native bf16" in CPU_WITHOUT_BF16.describe()


def test_gpu_runs_ignore_the_cpus_bf16_and_fall_back_to_bf16_rates_for_fp32(cpu_has_bf16):
    cpu_has_bf16(False)
    cfg = _cifar_resnet("resnet18")
    assert estimate(cfg, "gpu").rate is H200_RESNET18_CIFAR
    # No fp32 rate was measured on a GPU: the bf16 entry times it, and its description says bf16.
    fp32 = estimate(cfg.with_overrides({"precision": "no"}), "gpu")
    assert fp32.rate is H200_RESNET18_CIFAR and "bf16" in fp32.rate.describe()


def test_another_gpus_rate_scales_every_gpu_entry_by_its_ratio_to_the_h200():
    small = _cifar_resnet("resnet18")
    default = estimate(small, "gpu")
    assert estimate(small, "gpu", views_per_s=2 * 2_429).hours == pytest.approx(default.hours, rel=1e-12)
    half = estimate(small, "gpu", views_per_s=2_429)                # a GPU half as fast as the H200
    assert half.rate is H200_RESNET18_CIFAR and half.hours == pytest.approx(2 * default.hours, rel=1e-12)


def test_a_total_names_each_rate_it_used_with_its_run_count():
    seeds = [_cifar_resnet("resnet18").with_overrides({"seed": s}) for s in range(3)]
    one = total(seeds, "gpu")
    assert one.runs == 3 and one.rate_text().startswith("rate measured on one NVIDIA H200: ResNet-18 x1 CIFAR")
    mixed = total(seeds + [_cifar_resnet("resnet50", 2.0)], "gpu")
    text = mixed.rate_text()
    assert text.startswith("rates measured on one NVIDIA H200: ") and text.count("one NVIDIA H200") == 1
    assert "ResNet-18 x1 CIFAR 32 px, batch 512, bf16, train() (3 runs)" in text
    assert "ResNet-50 x1 224 px, batch 256, bf16, the step on pre-made views (1 run)" in text
    assert mixed.hours == pytest.approx(sum(estimate(c, "gpu").hours for c in seeds + [_cifar_resnet("resnet50", 2.0)]))


def test_hardware_without_a_measured_rate_is_refused_naming_the_measured_ones():
    with pytest.raises(ConfigError, match=r"'tpu'.*cpu, gpu"):
        estimate(_cifar_resnet("resnet18"), "tpu")


@pytest.mark.parametrize("args, needle", [
    (("--dry-run", "--gpu-images-per-s", "1200"), "scaled by 1,200 / 2,429 ResNet-50-1x-224px images/s (given by"),
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


def _eval_hours(cfg: RunConfig) -> float:
    """Hours of `cfg`'s evaluation alone: the estimate minus that of the same run with no protocol."""
    cost = estimate(cfg, "gpu")
    return cost.hours - estimate(cfg.with_overrides({"eval.protocols": ()}), "gpu").hours


def test_fine_tuning_costs_its_epochs_over_each_label_fraction():
    cfg = _cifar_resnet("resnet18").with_overrides({"eval.protocols": ("finetune",), "eval.finetune_epochs": 30,
                                                    "eval.finetune_fractions": (0.01, 0.1)})
    views = 30 * (500 + 5_000) + 2 * 10_000 / 3           # fwd + bwd per labelled image and epoch; a test pass each
    seconds_per_view = 1 / (2 * 27_000)                    # ResNet-18 CIFAR: the entry's own cost, no scaling
    assert _eval_hours(cfg) == pytest.approx(views * seconds_per_view / 3600, rel=1e-9)
    longer = cfg.with_overrides({"eval.finetune_epochs": 60})
    assert _eval_hours(longer) > 1.9 * _eval_hours(cfg)


def test_the_transform_probe_reads_both_splits_once_per_task():
    cfg = _cifar_resnet("resnet18").with_overrides({"eval.protocols": ("transform_probe",)})
    assert _eval_hours(cfg) == pytest.approx(4 * 60_000 / 3 / (2 * 27_000) / 3600, rel=1e-9)
    two = cfg.with_overrides({"eval.transform_tasks": ("color", "rotation")})
    assert _eval_hours(two) == pytest.approx(_eval_hours(cfg) / 2, rel=1e-9)


def test_transfer_costs_the_transfer_datasets_own_size():
    food = _cifar_resnet("resnet18").with_overrides({"eval.protocols": ("transfer",), "eval.finetune_epochs": 10,
                                                     "eval.transfer_dataset": "food101"})
    views = (75_750 + 25_250) / 3 + 10 * 75_750 + 25_250 / 3          # linear: one pass; fine-tuning: 10 epochs
    assert _eval_hours(food) == pytest.approx(views / (2 * 27_000) / 3600, rel=1e-9)
    flowers = food.with_overrides({"eval.transfer_dataset": "flowers102"})
    assert _eval_hours(flowers) < _eval_hours(food) / 10
    linear_only = food.with_overrides({"eval.transfer_protocols": ("linear",)})
    assert _eval_hours(linear_only) == pytest.approx(101_000 / 3 / (2 * 27_000) / 3600, rel=1e-9)
    limited = food.with_overrides({"data.train_limit": 1_000, "data.test_limit": 100})   # as transfer.py limits it
    assert _eval_hours(limited) == pytest.approx((1_100 / 3 + 10_000 + 100 / 3) / (2 * 27_000) / 3600, rel=1e-9)


def test_knn_monitoring_during_training_is_part_of_the_pretraining():
    cfg = _cifar_resnet("resnet18").with_overrides({"eval.protocols": (), "eval.knn_every_epochs": 10})
    plain = estimate(cfg.with_overrides({"eval.knn_every_epochs": 0}), "gpu")
    monitored = estimate(cfg, "gpu")
    extra = 10 * 60_000 / 3 / (2 * 27_000) / 3600                     # 100 epochs: 10 monitor passes
    assert monitored.pretrain_hours == pytest.approx(plain.pretrain_hours + extra, rel=1e-9)
    assert monitored.hours == pytest.approx(monitored.pretrain_hours, rel=1e-12)


def test_a_folder_of_ones_own_is_planned_at_its_own_size_not_imagenets(tmp_path, monkeypatch):
    """A 440-image folder was planned as ImageNet's 1.28 M training and 50 k test images: Table 7's smoke runs
    (2 steps, fine-tuning and kNN over the splits) were estimated at 38 hours instead of seconds."""
    import numpy as np
    from PIL import Image

    from registry.estimate import split_sizes

    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))
    for split, count in (("train", 30), ("test", 12)):
        for label in range(3):
            folder = tmp_path / "folder" / split / f"c{label}"
            folder.mkdir(parents=True)
            for i in range(count // 3):
                Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(folder / f"{i}.png")
    cfg = _cfg(**{"data.dataset": "imagefolder", "data.data_dir": str(tmp_path / "folder"), "data.train_limit": None,
                  "data.test_limit": None, "eval.protocols": ("knn", "finetune"), "data.image_size": 32})
    assert split_sizes(cfg) == (30, 12)
    assert split_sizes(cfg.with_overrides({"data.train_limit": 20})) == (20, 12)
    assert split_sizes(cfg.with_overrides({"data.data_dir": str(tmp_path / "nowhere")})) == (1_281_167, 50_000)
    imagenet_sized = estimate(cfg.with_overrides({"data.dataset": "imagenet", "data.data_dir": None}), "cpu")
    assert estimate(cfg, "cpu").hours < imagenet_sized.hours / 1_000
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.npy"))   # nothing decoded
