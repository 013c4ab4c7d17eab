"""Transformation prediction (Table 3): the labelled views are the transformations their labels say, drawn in
the intended proportions; the MLP probe learns a label that the features encode and cannot beat the majority
class on features that do not; the encoder and head stay bit-identical; train() reports the metrics."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from simclr_core.augment import functional as K
from simclr_core.config import AugmentConfig, RunConfig
from simclr_core.evaluate.protocols import run_protocols
from simclr_core.evaluate.transform_probe import TASKS, labelled_views, probe_accuracy, transform_probe_eval
from simclr_core.models import projection_head
from simclr_core.validation import ConfigError
from test_evaluate import MEAN, STD, CountingEncoder, small_encoder

PROBE = dict(hidden_dim=32, epochs=20, batch_size=32, lr=0.1, seed=0)


def random_images(n: int, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def colourful(n: int, size: int = 8, seed: int = 0) -> torch.Tensor:
    """float (n, 3, size, size) in [0.2, 0.8]: coloured pixels, away from the clamp at 0 and 1."""
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 0.6 + 0.2


# ---- the labelled views -----------------------------------------------------------------------------------
@pytest.mark.parametrize("task,shares", [
    ("color", [0.8, 0.2]), ("rotation", [0.25] * 4), ("noise", [0.5, 0.5]), ("sobel", [0.5, 0.5]),
])
def test_labels_have_the_intended_distribution(task, shares):
    images = random_images(4000, size=4)
    x, labels = labelled_views(images, task, AugmentConfig(), torch.Generator().manual_seed(1))
    assert x.shape == (4000, 3, 4, 4) and x.dtype == torch.float32 and labels.dtype == torch.int64
    observed = torch.bincount(labels, minlength=TASKS[task].classes).double() / labels.numel()
    torch.testing.assert_close(observed, torch.tensor(shares, dtype=torch.float64), atol=0.025, rtol=0)


def test_color_task_grays_exactly_the_images_labelled_gray():
    x = colourful(200)
    out, gray = TASKS["color"].transform(x, AugmentConfig(color_strength=0.5), torch.Generator().manual_seed(2))
    channel_spread = (out.amax(dim=1) - out.amin(dim=1)).amax(dim=(1, 2))       # (N,)
    assert gray.any() and (~gray.bool()).any()
    assert torch.all(channel_spread[gray == 1] == 0)                             # R = G = B
    assert torch.all(channel_spread[gray == 0] > 0.01)                           # colour kept (saturation >= 0.6)


def test_rotation_task_turns_each_image_by_its_label():
    x = colourful(40)
    out, k = TASKS["rotation"].transform(x, AugmentConfig(), torch.Generator().manual_seed(3))
    assert set(k.tolist()) == {0, 1, 2, 3}
    for i in range(x.shape[0]):
        assert torch.equal(out[i], torch.rot90(x[i], int(k[i]), dims=(-2, -1)))


def test_noise_task_corrupts_exactly_the_images_labelled_corrupted():
    x = colourful(100)
    out, corrupted = TASKS["noise"].transform(x, AugmentConfig(noise_std=(0.05, 0.1)),
                                              torch.Generator().manual_seed(4))
    clean = corrupted == 0
    assert clean.any() and corrupted.any()
    assert torch.equal(out[clean], x[clean])
    deviation = (out - x)[~clean].std(dim=(1, 2, 3))                             # the std drawn for each image
    assert torch.all((deviation > 0.04) & (deviation < 0.12))


def test_sobel_task_filters_exactly_the_images_labelled_filtered():
    x = colourful(60)
    out, filtered = TASKS["sobel"].transform(x, AugmentConfig(), torch.Generator().manual_seed(5))
    rows = filtered == 1
    assert rows.any() and (~rows).any()
    assert torch.equal(out[~rows], x[~rows])
    torch.testing.assert_close(out[rows], K.sobel(x[rows]), rtol=0, atol=0)


def test_views_are_cropped_then_transformed_and_fixed_by_the_seed():
    """A crop of the whole image (scale = ratio = 1) leaves the flip: each rotation view is rot90 of the image or
    of its mirror image, as its label says; the same seed draws the same views."""
    images = random_images(64, size=6, seed=6)
    whole = AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0))
    x, k = labelled_views(images, "rotation", whole, torch.Generator().manual_seed(7))
    again, k_again = labelled_views(images, "rotation", whole, torch.Generator().manual_seed(7))
    assert torch.equal(x, again) and torch.equal(k, k_again)
    source = images.float() / 255
    flipped = 0
    for i in range(64):
        plain = torch.rot90(source[i], int(k[i]), dims=(-2, -1))
        mirrored = torch.rot90(source[i].flip(-1), int(k[i]), dims=(-2, -1))
        is_plain, is_mirrored = (torch.allclose(x[i], t, atol=1e-5) for t in (plain, mirrored))
        assert is_plain or is_mirrored
        flipped += is_mirrored and not is_plain
    assert 10 < flipped < 54
    cropped, _ = labelled_views(images, "rotation", AugmentConfig(), torch.Generator().manual_seed(7))
    assert not torch.allclose(cropped, x)                                        # the default crop crops


# ---- the probe --------------------------------------------------------------------------------------------
def test_probe_reaches_100_percent_on_features_that_encode_the_label():
    g = torch.Generator().manual_seed(8)
    labels = torch.randint(0, 4, (300,), generator=g)
    features = F.one_hot(labels, 4).float() @ torch.randn(4, 16, generator=g) + 0.05 * torch.randn(300, 16, generator=g)
    accuracy = probe_accuracy(features[:200], labels[:200], features[200:], labels[200:], num_classes=4, **PROBE)
    assert accuracy == 100.0


def test_probe_on_features_independent_of_the_label_stays_near_the_majority_rate():
    g = torch.Generator().manual_seed(9)
    labels = (torch.rand(2400, generator=g) < 0.2).long()                         # 80 % class 0
    features = torch.randn(2400, 16, generator=g)
    accuracy = probe_accuracy(features[:400], labels[:400], features[400:], labels[400:], num_classes=2, **PROBE)
    majority = 100.0 * (labels[400:] == 0).double().mean().item()
    assert majority - 15 < accuracy < majority + 3


# ---- the protocol -----------------------------------------------------------------------------------------
def test_encoder_and_head_are_bit_identical_after_the_protocol():
    encoder, head = small_encoder(width=8), projection_head("nonlinear", 8, 4)
    encoder.train(), head.train()
    before = {name: t.clone() for name, t in [*encoder.state_dict().items(),
                                              *(("head." + n, t) for n, t in head.state_dict().items())]}
    assert any("running_var" in n for n in before) and any("num_batches_tracked" in n for n in before)
    metrics = transform_probe_eval(encoder, head, random_images(48), random_images(24, seed=1), mean=MEAN, std=STD,
                                   epochs=2, batch_size=16, extract_batch_size=20)
    after = {**encoder.state_dict(), **{"head." + n: t for n, t in head.state_dict().items()}}
    assert before.keys() == after.keys() and all(torch.equal(before[n], after[n]) for n in before)
    assert encoder.training and head.training
    assert set(metrics) == {f"transform_{t}_{r}" for t in TASKS for r in ("h", "gh", "random_guess")}
    assert all(0 <= v <= 100 for v in metrics.values())


def test_a_head_that_changes_in_eval_mode_is_caught():
    class Counting(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("count", torch.zeros((), dtype=torch.long))

        def forward(self, h):
            self.count += 1
            return h

    with pytest.raises(RuntimeError, match=r"projection head g\(\.\) changed .*head\.count"):
        transform_probe_eval(small_encoder(width=8), Counting(), random_images(8), random_images(8), mean=MEAN, std=STD,
                             tasks=("sobel",), epochs=1)


def task_generator(seed: int, task: str, split: int) -> torch.Generator:
    from simclr_core.seeding import mix

    return torch.Generator().manual_seed(mix(seed, list(TASKS).index(task), split))


def test_random_guess_is_the_majority_share_of_the_test_labels():
    test = random_images(30, seed=2)
    metrics = transform_probe_eval(small_encoder(width=8), nn.Identity(), random_images(16), test, mean=MEAN, std=STD,
                                   tasks=("rotation",), epochs=1, seed=3)
    _, labels = labelled_views(test, "rotation", AugmentConfig(), task_generator(3, "rotation", split=1))
    assert metrics["transform_rotation_random_guess"] == pytest.approx(100 * torch.bincount(labels).max().item() / 30)
    assert metrics["transform_rotation_h"] == metrics["transform_rotation_gh"]  # g = identity: the same features


@pytest.mark.parametrize("overrides,needle", [
    ({"tasks": ("color", "jigsaw")}, "tasks='jigsaw' is not valid; choose one of: 'color', 'rotation', 'noise', "
                                     "'sobel'"),
    ({"tasks": ()}, r"tasks=\(\) must name at least one task"),
    ({"tasks": ("noise", "noise")}, "names 'noise' more than once"),
    ({"epochs": 0}, "epochs=0"),
    ({"lr": 0.0}, "lr=0.0"),
    ({"mean": (0.5, 0.5)}, r"mean=\(0.5, 0.5\)"),
])
def test_bad_arguments_raise_config_error_before_any_compute(overrides, needle):
    encoder = CountingEncoder()
    with pytest.raises(ConfigError, match=needle):
        transform_probe_eval(encoder, nn.Identity(), random_images(8), random_images(8),
                             **{"mean": MEAN, "std": STD, **overrides})
    assert encoder.calls == 0


def test_config_validates_the_tasks_on_either_path():
    probe = {"eval.protocols": ("knn", "transform_probe")}
    RunConfig().with_overrides(probe).validate()
    assert RunConfig().eval.protocols == ("knn",)                               # opt-in only
    with pytest.raises(ConfigError, match="eval.transform_tasks='flip' is not valid; choose one of: 'color'"):
        RunConfig().with_overrides({**probe, "eval.transform_tasks": ("color", "flip")}).validate()
    streamed = {"data.dataset": "imagefolder", "data.data_dir": "/nowhere", "data.loader": "stream"}
    RunConfig().with_overrides({**probe, **streamed}).validate()               # crops drawn on the originals


def test_run_protocols_needs_the_head_for_the_probe():
    with pytest.raises(ConfigError, match=r"'transform_probe' read the projection head g\(\.\)"):
        run_protocols(small_encoder(width=8), None, RunConfig(), None, ("transform_probe",))


def test_train_writes_the_probe_metrics_to_final_json(tmp_path):
    from simclr_core.train import train

    cfg = RunConfig().with_overrides({
        "data.train_limit": 64, "data.test_limit": 40, "encoder.width": 0.25, "batch_size": 32, "epochs": 1,
        "max_steps": 1, "eval.knn_k": 10, "eval.protocols": ("knn", "transform_probe"),
        "eval.transform_tasks": ("color", "rotation"), "eval.transform_epochs": 2, "precision": "no"})
    metrics = train(cfg, tmp_path / "run")
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    names = {f"transform_{t}_{r}" for t in ("color", "rotation") for r in ("h", "gh", "random_guess")}
    assert names <= set(final) and "knn_top1" in final and "transform_noise_h" not in final
    assert all(0 <= final[n] <= 100 for n in names) and final == json.loads(json.dumps(metrics))
