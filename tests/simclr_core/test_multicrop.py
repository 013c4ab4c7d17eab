"""Multi-crop: the small views (which image, which crop scale, which side), the model's one forward over views of
two sides, the loss over view pairs against a float64 textbook, and the config errors."""
from __future__ import annotations

import copy

import pytest
import torch

from simclr_core.augment import build_augmentation, build_local_views
from simclr_core.config import AugmentConfig, EncoderConfig, HeadConfig, LossConfig, RunConfig
from simclr_core.losses import compute_loss, compute_multicrop_loss
from simclr_core.models import build_model
from simclr_core.validation import ConfigError

from test_losses import textbook_nt_xent

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- the small views ------------------------------------------------------------------------------
@pytest.mark.parametrize("count", [2, 4, 6])
def test_small_view_k_of_image_i_is_row_k_times_b_plus_i(count):
    """Flat-coloured images: a crop of image i, resized and flipped, is still image i's colour, so every row
    tells which image it came from."""
    b = 5
    colours = torch.linspace(0.1, 0.9, b)
    images = colours.view(b, 1, 1, 1).expand(b, 3, 32, 32).contiguous()
    small = build_local_views(AugmentConfig(ops=("crop",), local_crops=count), 32, MEAN, STD)
    views = small(images, gen())
    assert views.shape == (count * b, 3, 16, 16)
    expected = ((colours - 0.5) / 0.25).repeat(count)
    torch.testing.assert_close(views.mean(dim=(1, 2, 3)), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(views.amax(dim=(1, 2, 3)), views.amin(dim=(1, 2, 3)), atol=1e-5, rtol=0)


def test_small_views_of_one_image_are_different_crops_and_seed_deterministic():
    images = torch.rand(3, 3, 32, 32, generator=gen(1))
    small = build_local_views(AugmentConfig(local_crops=4), 32, MEAN, STD)
    views = small(images, gen(7)).view(4, 3, 3, 16, 16)        # (k, image, C, H, W)
    for i in range(3):
        for a in range(4):
            for c in range(a + 1, 4):
                assert not torch.allclose(views[a, i], views[c, i])
    torch.testing.assert_close(small(images, gen(7)).view(4, 3, 3, 16, 16), views, rtol=0, atol=0)


def test_small_views_crop_with_the_local_scale_not_the_full_size_one():
    cfg = AugmentConfig(crop_scale=(0.6, 1.0), local_crops=2, local_crop_scale=(0.05, 0.14))
    crop = dict(build_local_views(cfg, 32, MEAN, STD).pairs.both)["crop"]
    boxes, _ = crop.draw(4000, 32, 32, torch.device("cpu"), gen(2))
    area = (boxes[:, 2] * boxes[:, 3]).double() / (32 * 32)
    # Integer boxes round the drawn area a little; the full-size scale (0.6, 1) would put them all above 0.5.
    assert area.min() >= 0.03 and area.max() <= 0.2 and area.median() < 0.12


def test_small_view_side_defaults_to_half_and_can_be_set():
    assert AugmentConfig(local_crops=2).local_crop_side(32) == 16
    assert AugmentConfig(local_crops=2).local_crop_side(224) == 112
    assert AugmentConfig(local_crops=2, local_crop_size=96).local_crop_side(224) == 96
    small = build_local_views(AugmentConfig(local_crops=2, local_crop_size=12), 32, MEAN, STD)
    assert small(torch.rand(2, 3, 32, 32), gen()).shape == (4, 3, 12, 12)
    assert build_local_views(AugmentConfig(), 32, MEAN, STD) is None


def test_small_views_written_into_out_equal_the_returned_ones():
    images = (torch.rand(4, 3, 32, 32, generator=gen(3)) * 255).to(torch.uint8)
    small = build_local_views(AugmentConfig(local_crops=4), 32, MEAN, STD)
    out = torch.empty((16, 3, 16, 16)).contiguous(memory_format=torch.channels_last)
    assert small(images, gen(5), out=out) is out
    torch.testing.assert_close(out, small(images, gen(5)), rtol=0, atol=0)


@pytest.mark.parametrize("changes, needles", [
    ({"local_crops": 3}, ["augment.local_crops=3", "even", "2 or 4"]),
    ({"local_crops": -2}, ["augment.local_crops=-2", "[0"]),
    ({"local_crops": 2, "ops": ("color",)}, ["augment.local_crops=2", "'crop'", "('color',)"]),
    ({"local_crops": 2, "one_branch": True}, ["augment.local_crops=2", "one_branch=False"]),
    ({"local_crop_size": 0}, ["augment.local_crop_size=0"]),
    ({"local_crop_scale": (0.3, 0.1)}, ["augment.local_crop_scale=(0.3, 0.1)", "low must not exceed high"]),
])
def test_bad_multicrop_config_raises_config_error_naming_value_and_choices(changes, needles):
    for build in (build_augmentation, build_local_views):
        with pytest.raises(ConfigError) as err:
            build(AugmentConfig(**changes), 32, MEAN, STD)
        assert all(needle in str(err.value) for needle in needles), str(err.value)
    with pytest.raises(ConfigError):
        RunConfig().with_overrides({f"augment.{k}": v for k, v in changes.items()}).validate()


# ---- the model on views of two sides ----------------------------------------------------------------
def test_model_runs_the_encoder_per_side_and_the_head_once_on_all_features():
    torch.manual_seed(0)
    model = build_model(EncoderConfig(width=0.25, stem="cifar"), HeadConfig(), 32).train()
    reference = copy.deepcopy(model)
    full, small = torch.randn(8, 3, 32, 32), torch.randn(12, 3, 16, 16)
    h, z = model((full, small))
    h_ref = torch.cat([reference.encoder(full), reference.encoder(small)])   # BatchNorm statistics per side
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(z, reference.head(h_ref))                      # the head's BatchNorm over all rows
    assert h.shape == (20, model.encoder.feature_dim) and z.shape == (20, 128)
    # One batch as a tensor or as a one-element sequence is the same forward.
    torch.testing.assert_close(model((full,))[1], model(full)[1])


# ---- the loss over view pairs -----------------------------------------------------------------------
def test_multicrop_loss_is_the_mean_over_full_full_and_full_small_pairs_of_the_textbook_loss():
    g = gen(4)
    z1, z2, *small = (torch.randn(4, 6, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(5))
    cfg = LossConfig(temperature=0.3)
    ours = compute_multicrop_loss(cfg, z1, z2, small)
    pairs = [(z1, z2)] + [(full, s) for s in small for full in (z1, z2)]       # 1 + 2 x 3 pairs, no small-small
    reference = sum(textbook_nt_xent(a, b, 0.3, True) for a, b in pairs) / len(pairs)
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=0)
    inputs = [z1, z2, *small]
    for got, want in zip(torch.autograd.grad(ours, inputs), torch.autograd.grad(reference, inputs)):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["nt_xent", "nt_logistic", "margin_triplet", "dcl"])
def test_without_small_views_the_multicrop_loss_is_the_two_view_loss(kind):
    z1, z2 = torch.randn(6, 5, generator=gen(5)), torch.randn(6, 5, generator=gen(6))
    cfg = LossConfig(kind=kind, temperature=0.2)
    assert torch.equal(compute_multicrop_loss(cfg, z1, z2), compute_loss(cfg, z1, z2))
