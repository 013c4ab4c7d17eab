"""Augmentations: kernels vs torchvision.transforms.v2.functional on fixed parameters, samplers vs the
paper's distributions, and the two-view module's contract (shapes, seeds, Figure 5 protocol, errors)."""

import numpy as np
import pytest
import torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF

from simclr_core.augment import OPS, build_augmentation, functional as F, sampling
from simclr_core.config import AugmentConfig
from simclr_core.validation import ConfigError

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def colourful(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Random float images with the cases colour kernels get wrong: grey pixels, ties, 0 and 1."""
    x = torch.rand(n, 3, h, w, generator=gen(seed))
    x[:, :, 0, :4] = x[:, :1, 0, :4]                      # r == g == b
    x[:, 1, 1, :4] = x[:, 0, 1, :4]                       # r == g ties
    x[:, 2, 2, :4] = x[:, 1, 2, :4]                       # g == b ties
    x[:, :, 3, 0], x[:, :, 3, 1] = 0.0, 1.0
    return x


# ---- kernels vs torchvision ----------------------------------------------------------------------
def test_resized_crop_with_flip_equals_torchvision_crop_then_resize():
    x = torch.rand(6, 3, 20, 28, generator=gen(1))
    boxes = torch.tensor([[0, 0, 20, 28], [3, 5, 4, 7], [15, 20, 5, 8], [2, 0, 17, 26], [19, 27, 1, 1],
                          [0, 9, 11, 19]])
    flip = torch.tensor([False, True, False, True, True, False])
    for size in (16, 40):                                 # down- and up-sampling
        ours = F.resized_crop(x, boxes, size, flip)
        for i, (top, left, h, w) in enumerate(boxes.tolist()):
            ref = TF.resized_crop(x[i], top, left, h, w, [size, size], antialias=False)
            ref = TF.horizontal_flip(ref) if flip[i] else ref
            torch.testing.assert_close(ours[i], ref, atol=1e-5, rtol=0)


def test_resize_equals_torchvision_and_is_identity_at_the_same_size():
    x = torch.rand(2, 3, 20, 28, generator=gen(2))
    torch.testing.assert_close(F.resize(x, 32), TF.resize(x, [32, 32], antialias=False), atol=1e-5, rtol=0)
    assert torch.equal(F.resize(x[..., :20], 20), x[..., :20])


@pytest.mark.parametrize("ours, theirs, factors, atol", [
    (F.adjust_brightness, TF.adjust_brightness, (0.0, 0.3, 1.0, 1.7), 1e-5),
    (F.adjust_contrast, TF.adjust_contrast, (0.0, 0.5, 1.0, 1.8), 1e-5),
    (F.adjust_saturation, TF.adjust_saturation, (0.0, 0.5, 1.0, 1.8), 1e-5),
    (F.adjust_hue, TF.adjust_hue, (-0.5, -0.1, 0.0, 0.37), 1e-5),
])
def test_colour_kernels_equal_torchvision_per_sample(ours, theirs, factors, atol):
    x = colourful(4, 9, 11)
    out = ours(x, torch.tensor(factors))
    for i, factor in enumerate(factors):
        torch.testing.assert_close(out[i], theirs(x[i], factor), atol=atol, rtol=0)


def test_grayscale_equals_torchvision_with_equal_channels():
    x = colourful(3, 8, 8)
    gray = F.rgb_to_grayscale(x, num_output_channels=3)
    torch.testing.assert_close(gray, TF.rgb_to_grayscale(x, num_output_channels=3), atol=1e-6, rtol=0)
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])


def test_colour_jitter_applies_the_four_ops_in_each_samples_own_order():
    n = 24
    x = colourful(n, 8, 10, seed=3)
    factors, order = sampling.color_jitter_params(n, 1.0, gen(4))
    out = F.color_jitter(x, factors, order)
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    for i in range(n):
        ref = x[i]
        for op_id in order[i].tolist():
            ref = ops[op_id](ref, float(factors[i, op_id]))
        torch.testing.assert_close(out[i], ref, atol=2e-5, rtol=0)
    assert len({tuple(o) for o in order.tolist()}) > 10   # orders really differ per sample


def test_colour_jitter_with_identity_factors_is_the_identity():
    x = colourful(5, 8, 8)
    factors = torch.tensor([[1.0, 1.0, 1.0, 0.0]]).repeat(5, 1)
    order = torch.stack([torch.randperm(4, generator=gen(i)) for i in range(5)])
    assert torch.equal(F.color_jitter(x, factors, order), x)


def test_to_float_rgb_scales_uint8_repeats_grey_and_writes_into_out():
    grey = torch.tensor([0, 51, 255], dtype=torch.uint8).view(3, 1, 1, 1)
    x = F.to_float_rgb(grey)
    assert x.dtype == torch.float32 and x.shape == (3, 3, 1, 1)
    torch.testing.assert_close(x[:, 2].flatten(), torch.tensor([0.0, 0.2, 1.0]), atol=0, rtol=0)
    out = torch.full((3, 3, 1, 1), -1.0)
    assert F.to_float_rgb(grey, out=out) is out and torch.equal(out, x)
    every_value = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    assert torch.equal(F.to_float_rgb(every_value)[0, 0].flatten(), torch.arange(256, dtype=torch.float32) / 255)
    floats = torch.rand(2, 3, 4, 4, dtype=torch.float64, generator=gen(11))
    converted = F.to_float_rgb(floats)
    assert converted.dtype == torch.float32 and torch.equal(converted, floats.float())


def test_colour_jitter_in_place_and_on_strided_input_gives_the_same_images():
    n = 12
    x = colourful(n, 9, 7, seed=8)
    factors, order = sampling.color_jitter_params(n, 1.0, gen(9))
    expected = F.color_jitter(x, factors, order)
    strided = x.to(memory_format=torch.channels_last)                 # not contiguous in (N, C, H, W)
    torch.testing.assert_close(F.color_jitter(strided, factors, order), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(strided, x, atol=0, rtol=0)           # not written into
    owned = x.clone()
    torch.testing.assert_close(F.color_jitter(owned, factors, order, inplace=True), expected, atol=1e-6, rtol=0)
    every_other_column = colourful(n, 9, 14, seed=10)[..., ::2]           # a strided view of a larger tensor
    expected = F.color_jitter(every_other_column.contiguous(), factors, order)
    torch.testing.assert_close(F.color_jitter(every_other_column, factors, order, inplace=True), expected,
                               atol=1e-6, rtol=0)


@pytest.mark.parametrize("kernel_size", [3, 5, 23])
def test_gaussian_blur_with_per_sample_sigma_equals_torchvision(kernel_size):
    x = torch.rand(3, 3, 24, 26, generator=gen(5))
    sigmas = (0.1, 0.7, 2.0)
    out = F.gaussian_blur(x, kernel_size, torch.tensor(sigmas))
    for i, sigma in enumerate(sigmas):
        ref = TF.gaussian_blur(x[i], [kernel_size] * 2, [sigma] * 2)
        torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=0)


def test_gaussian_blur_ignores_the_input_memory_layout():
    x = torch.rand(4, 3, 30, 34, generator=gen(6))
    sigma = torch.tensor([0.1, 0.5, 1.0, 2.0])
    expected = F.gaussian_blur(x, 5, sigma)
    for layout in (x.contiguous(memory_format=torch.channels_last), torch.rand(4, 3, 30, 68)[..., ::2].copy_(x)):
        out = F.gaussian_blur(layout, 5, sigma)
        assert out.shape == x.shape
        torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert not torch.equal(expected, x)


def test_blur_kernel_is_ten_percent_of_the_side_and_odd():
    assert [F.blur_kernel_size(s) for s in (9, 32, 64, 96, 224)] == [1, 3, 7, 9, 23]


def test_rotate90_equals_torchvision_rotate_and_four_turns_are_the_identity():
    x = torch.rand(4, 3, 7, 7, generator=gen(6))
    out = F.rotate90(x, torch.tensor([0, 1, 2, 3]))
    for k in range(4):
        torch.testing.assert_close(out[k], TF.rotate(x[k], 90.0 * k), atol=0, rtol=0)
    ones = torch.ones(4, dtype=torch.long)
    assert torch.equal(F.rotate90(F.rotate90(F.rotate90(F.rotate90(x, ones), ones), ones), ones), x)
    with pytest.raises(ValueError, match="square"):
        F.rotate90(torch.rand(1, 3, 4, 5), ones[:1])


# ---- kernels without a torchvision twin: hand computations ---------------------------------------
def test_cutout_zeros_exactly_the_square_and_nothing_else():
    x = torch.rand(3, 3, 12, 12, generator=gen(7)) * 0.9 + 0.1
    corners = torch.tensor([[0, 0], [7, 3], [2, 7]])
    out = F.cutout(x, corners, 5)
    for i, (top, left) in enumerate(corners.tolist()):
        inside = torch.zeros(12, 12, dtype=torch.bool)
        inside[top:top + 5, left:left + 5] = True
        assert (out[i][:, inside] == 0).all() and torch.equal(out[i][:, ~inside], x[i][:, ~inside])


def _sobel_reference(image: np.ndarray) -> np.ndarray:
    """Textbook float64 Sobel magnitude of the luma with reflect padding, /4, clipped to [0, 1]."""
    luma = 0.2989 * image[0] + 0.587 * image[1] + 0.114 * image[2]
    p = np.pad(luma, 1, mode="reflect")
    h, w = luma.shape
    win = lambda dy, dx: p[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]  # noqa: E731
    gx = (win(-1, 1) + 2 * win(0, 1) + win(1, 1)) - (win(-1, -1) + 2 * win(0, -1) + win(1, -1))
    gy = (win(1, -1) + 2 * win(1, 0) + win(1, 1)) - (win(-1, -1) + 2 * win(-1, 0) + win(-1, 1))
    return np.clip(np.hypot(gx, gy) / 4.0, 0.0, 1.0)


def test_sobel_is_the_edge_magnitude():
    x = torch.rand(2, 3, 9, 10, generator=gen(8), dtype=torch.float64).float()
    out = F.sobel(x)
    for i in range(2):
        ref = torch.from_numpy(_sobel_reference(x[i].double().numpy())).float()
        for c in range(3):
            torch.testing.assert_close(out[i, c], ref, atol=1e-5, rtol=0)
    assert (F.sobel(torch.full((1, 3, 6, 6), 0.3)) == 0).all()          # no edges in a constant image
    step = torch.zeros(1, 3, 6, 8)
    step[..., 4:] = 1.0                                                  # a unit step between columns 3 and 4
    expected = torch.zeros(6, 8)
    expected[:, 3:5] = 0.2989 + 0.587 + 0.114                            # the luma of white
    torch.testing.assert_close(F.sobel(step)[0, 0], expected, atol=1e-6, rtol=0)


def test_gaussian_noise_has_the_requested_std_and_stays_in_range():
    x = torch.full((3, 3, 64, 64), 0.5)
    std = torch.tensor([0.0, 0.05, 0.1])
    out = F.add_gaussian_noise(x, std, torch.randn(x.shape, generator=gen(9)))
    assert torch.equal(out[0], x[0])
    for i in (1, 2):
        assert abs((out[i] - x[i]).std().item() - std[i].item()) < 0.05 * std[i].item()
    bright = F.add_gaussian_noise(torch.ones(1, 3, 8, 8), torch.tensor([0.1]), torch.randn(1, 3, 8, 8))
    assert bright.max() <= 1.0 and bright.min() >= 0.0


# ---- samplers vs the paper's distributions -------------------------------------------------------
def test_crop_boxes_follow_scale_and_ratio_and_stay_inside():
    h, w, n = 224, 200, 4000
    boxes = sampling.crop_boxes(n, h, w, (0.08, 1.0), (3 / 4, 4 / 3), gen(10))
    top, left, bh, bw = boxes.T.double()
    assert (top >= 0).all() and (left >= 0).all() and (top + bh <= h).all() and (left + bw <= w).all()
    area, aspect = bh * bw / (h * w), bw / bh
    assert area.min() >= 0.08 * 0.97 and area.max() <= 1.0 and area.min() < 0.1 and area.max() > 0.9
    assert aspect.min() >= 0.75 * 0.97 and aspect.max() <= 4 / 3 * 1.03
    assert (top / (h - bh + 1)).mean().sub(0.5).abs() < 0.03          # positions uniform over the slack


def test_crop_boxes_match_torchvision_random_resized_crop_in_distribution():
    h, w, n = 32, 24, 1500
    ours = sampling.crop_boxes(n, h, w, (0.08, 1.0), (3 / 4, 4 / 3), gen(11)).double()
    torch.manual_seed(0)
    theirs = torch.tensor([T.RandomResizedCrop.get_params(torch.empty(3, h, w), [0.08, 1.0], [3 / 4, 4 / 3])
                           for _ in range(n)]).double()
    for col in range(4):                                                # top, left, height, width
        assert abs(ours[:, col].mean() - theirs[:, col].mean()) < 0.06 * theirs[:, col].mean() + 0.3


def test_crop_boxes_fall_back_to_a_central_crop_like_torchvision():
    boxes = sampling.crop_boxes(5, 32, 32, (0.99, 1.0), (3.0, 4.0), gen(12))
    assert boxes.tolist() == [[10, 0, 11, 32]] * 5                      # w = 32, h = round(32 / 3)
    boxes = sampling.crop_boxes(5, 32, 32, (0.99, 1.0), (0.2, 0.25), gen(12))
    assert boxes.tolist() == [[0, 12, 32, 8]] * 5                       # h = 32, w = round(32 * 0.25)


def test_colour_jitter_parameters_follow_strength():
    factors, order = sampling.color_jitter_params(2000, 0.5, gen(13))
    bcs, hue = factors[:, :3], factors[:, 3]
    assert bcs.min() >= 0.6 and bcs.max() <= 1.4 and bcs.min() < 0.61 and bcs.max() > 1.39
    assert hue.min() >= -0.1 and hue.max() <= 0.1 and hue.abs().max() > 0.099
    assert torch.equal(order.sort(dim=1).values, torch.arange(4).expand(2000, 4))
    assert (order[:, 0].bincount(minlength=4) > 400).all()              # each op first ~1/4 of the time
    strong, _ = sampling.color_jitter_params(500, 2.0, gen(14))
    assert strong[:, :3].min() >= 0.0 and strong[:, :3].max() <= 2.6


def test_quarter_turns_and_cutout_corners_are_uniform_and_valid():
    turns = sampling.quarter_turns(3000, gen(15))
    assert set(turns.tolist()) == {1, 2, 3} and (turns.bincount()[1:] > 900).all()
    corners = sampling.cutout_corners(3000, 12, 10, 5, gen(16))
    assert corners[:, 0].min() == 0 and corners[:, 0].max() == 7 and corners[:, 1].max() == 5


# ---- the two-view module -------------------------------------------------------------------------
def two_views(images, seed=0, image_size=16, **cfg):
    return build_augmentation(AugmentConfig(**cfg), image_size, MEAN, STD)(images, gen(seed))


def uint8_images(n=6, h=20, w=24, seed=0):
    return torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=gen(seed))


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_builds_keeps_the_contract_and_is_seed_deterministic(name):
    images = uint8_images()
    v1, v2 = two_views(images, ops=(name,))
    assert v1.shape == v2.shape == (6, 3, 16, 16) and v1.dtype == v2.dtype == torch.float32
    assert v1.device == images.device and torch.isfinite(v1).all() and torch.isfinite(v2).all()
    raw = v1 * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
    assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5                 # a [0, 1] image before normalising
    again = two_views(images, ops=(name,))
    assert torch.equal(v1, again[0]) and torch.equal(v2, again[1])
    other = two_views(images, seed=1, ops=("crop", name))
    assert not torch.equal(two_views(images, ops=("crop", name))[0], other[0])


def test_views_differ_and_uint8_equals_float_input():
    images = uint8_images(seed=1)
    v1, v2 = two_views(images)
    assert not torch.allclose(v1, v2)
    f1, f2 = two_views(images.float() / 255)
    torch.testing.assert_close(f1, v1, atol=1e-5, rtol=0)
    torch.testing.assert_close(f2, v2, atol=1e-5, rtol=0)


@pytest.mark.parametrize("one_branch", [False, True])
def test_a_crop_that_comes_first_gives_crop_resize_then_flip_per_view(one_branch):
    images = torch.randint(0, 256, (6, 3, 20, 28), dtype=torch.uint8, generator=gen(24))
    aug = build_augmentation(AugmentConfig(ops=("crop",), one_branch=one_branch), 16, (0.0,) * 3, (1.0,) * 3)
    views = torch.cat(aug(images, gen(25)))
    (boxes, flip), = aug._draw(6, 20, 28, images.device, gen(25))[0]     # the parameters the call drew
    assert flip.any() and not flip.all()
    floats = images.float() / 255
    for i in range(12):
        ref = TF.resized_crop(floats[i % 6], *boxes[i].tolist(), [16, 16], antialias=False)
        ref = TF.horizontal_flip(ref) if flip[i] else ref
        torch.testing.assert_close(views[i], ref, atol=1e-5, rtol=0)


def test_mirrored_boxes_crop_the_flipped_image_as_the_flipped_crop():
    x = torch.rand(4, 3, 12, 17, generator=gen(26))
    boxes = torch.tensor([[0, 0, 12, 17], [2, 3, 5, 9], [1, 10, 7, 7], [11, 16, 1, 1]])
    flip = torch.tensor([True, True, False, True])
    mirrored = F.mirror_boxes(boxes, 17, flip)
    assert mirrored[:, 1].tolist() == [0, 5, 10, 0] and torch.equal(mirrored[:, [0, 2, 3]], boxes[:, [0, 2, 3]])
    flipped = torch.where(flip.view(4, 1, 1, 1), x.flip(3), x)
    torch.testing.assert_close(F.resized_crop(flipped, mirrored, 9), F.resized_crop(x, boxes, 9, flip),
                               atol=1e-5, rtol=0)


def test_single_channel_input_is_repeated_and_normalised():
    gray = torch.rand(4, 1, 20, 20, generator=gen(2))
    v1, _ = build_augmentation(AugmentConfig(ops=("crop",)), 12, (0.5,) * 3, (0.25,) * 3)(gray, gen(0))
    assert v1.shape == (4, 3, 12, 12) and torch.equal(v1[:, 0], v1[:, 1]) and torch.equal(v1[:, 1], v1[:, 2])
    constant = torch.full((2, 3, 20, 20), 0.75)
    v1, v2 = build_augmentation(AugmentConfig(ops=("crop",)), 12, (0.5,) * 3, (0.25,) * 3)(constant, gen(0))
    torch.testing.assert_close(v1, torch.ones_like(v1), atol=1e-6, rtol=0)   # (0.75 - 0.5) / 0.25


def test_without_crop_images_are_only_resized():
    images = torch.rand(3, 3, 8, 8, generator=gen(3))
    v1, v2 = build_augmentation(AugmentConfig(ops=("sobel",)), 16, (0.0,) * 3, (1.0,) * 3)(images, gen(0))
    expected = F.sobel(TF.resize(images, [16, 16], antialias=False))
    torch.testing.assert_close(v1, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(v2, expected, atol=1e-5, rtol=0)


def test_one_branch_transforms_view_one_only_after_cropping_both():
    # Constant images: any crop is the identity, so view 2 must be the input and view 1 its sobel (0).
    colours = torch.rand(8, 3, 1, 1, generator=gen(4)).expand(8, 3, 20, 20)
    aug = build_augmentation(AugmentConfig(ops=("sobel", "crop"), one_branch=True), 16, (0.0,) * 3, (1.0,) * 3)
    v1, v2 = aug(colours, gen(0))
    torch.testing.assert_close(v2, colours[..., :16, :16], atol=1e-6, rtol=0)
    assert v1.abs().max() < 1e-5
    assert [n for n, _ in aug.both] == ["crop"] and [n for n, _ in aug.first_only] == ["sobel"]
    # The crop really is random on both branches.
    images = torch.rand(8, 3, 20, 20, generator=gen(5))
    c1, c2 = build_augmentation(AugmentConfig(ops=("crop",), one_branch=True), 16, MEAN, STD)(images, gen(0))
    assert not torch.allclose(c1, c2)
    # Without one_branch, both views get the colour distortion.
    plain = build_augmentation(AugmentConfig(ops=("color",)), 16, (0.0,) * 3, (1.0,) * 3)(colours, gen(0))
    assert all((~torch.isclose(v, colours[..., :16, :16], atol=1e-4)).flatten(1).any(1).sum() >= 4 for v in plain)


def test_colour_distortion_probabilities_match_the_paper():
    n = 2000
    images = torch.rand(n, 3, 6, 6, generator=gen(6))
    v1, _ = build_augmentation(AugmentConfig(ops=("color",)), 6, (0.0,) * 3, (1.0,) * 3)(images, gen(1))
    grey = (v1[:, 0] == v1[:, 1]).flatten(1).all(1) & (v1[:, 1] == v1[:, 2]).flatten(1).all(1)
    untouched = (v1 == images).flatten(1).all(1)
    assert abs(grey.float().mean().item() - 0.2) < 0.03                 # RandomGrayscale(p=0.2)
    assert abs(untouched.float().mean().item() - 0.8 * 0.2) < 0.03      # no jitter (p=0.2) and no grey


def test_blur_probability_and_crop_flip_probability():
    images = torch.rand(2000, 3, 20, 20, generator=gen(7))                # blur kernel 3 at 20 px
    blur = AugmentConfig(ops=("blur",), blur_prob=0.3)
    v1, _ = build_augmentation(blur, 20, (0.0,) * 3, (1.0,) * 3)(images, gen(2))
    assert abs((v1 == images).flatten(1).all(1).float().mean().item() - 0.7) < 0.04
    full = AugmentConfig(ops=("crop",), crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0))
    v1, _ = build_augmentation(full, 20, (0.0,) * 3, (1.0,) * 3)(images, gen(3))
    flipped = torch.isclose(v1, images.flip(-1), atol=1e-6).flatten(1).all(1)
    kept = torch.isclose(v1, images, atol=1e-6).flatten(1).all(1)
    assert (flipped ^ kept).all() and abs(flipped.float().mean().item() - 0.5) < 0.04


def test_a_name_listed_twice_runs_once():
    aug = build_augmentation(AugmentConfig(ops=("color", "color")), 16, MEAN, STD)
    assert [n for n, _ in aug.both] == ["color"]


@pytest.mark.parametrize("changes, needles", [
    ({"ops": ("crop", "posterize")}, ["augment.ops='posterize'", "'sobel'", "'rotate'", "'motion_blur'"]),
    ({"ops": ()}, ["augment.ops is empty", "'crop'"]),
    ({"color_strength": -0.5}, ["augment.color_strength=-0.5", "[0"]),
    ({"crop_scale": (0.5, 0.2)}, ["augment.crop_scale=(0.5, 0.2)", "low must not exceed high"]),
    ({"blur_prob": 1.5}, ["augment.blur_prob=1.5", "1]"]),
    ({"cutout_fraction": 0.0}, ["augment.cutout_fraction=0.0", "(0"]),
])
def test_bad_config_raises_config_error_naming_value_and_choices(changes, needles):
    with pytest.raises(ConfigError) as err:
        build_augmentation(AugmentConfig(**changes), 16, MEAN, STD)
    assert all(needle in str(err.value) for needle in needles), str(err.value)


def test_bad_normalisation_raises_config_error():
    with pytest.raises(ConfigError, match="std"):
        build_augmentation(AugmentConfig(), 16, MEAN, (0.2, 0.0, 0.2))
    with pytest.raises(ConfigError, match="mean"):
        build_augmentation(AugmentConfig(), 16, (0.5, 0.5), STD)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_batch_gives_the_cpu_views():
    images = uint8_images()
    cfg = AugmentConfig(ops=("crop", "color", "blur", "cutout", "rotate"))
    cpu = build_augmentation(cfg, 16, MEAN, STD)(images, gen(0))
    gpu = build_augmentation(cfg, 16, MEAN, STD)(images.cuda(), gen(0))
    assert gpu[0].is_cuda
    for a, b in zip(cpu, gpu):
        torch.testing.assert_close(b.cpu(), a, atol=1e-4, rtol=0)


# ---- chunked application on CPUs -----------------------------------------------------------------
@pytest.mark.parametrize("cfg", [
    AugmentConfig(ops=("crop", "color", "blur", "cutout", "rotate", "noise", "sobel")),
    AugmentConfig(ops=("crop", "color", "blur", "rotate"), one_branch=True),
    AugmentConfig(ops=("color", "blur")),                                 # no crop: resized first
])
@pytest.mark.parametrize("threads", [1, 2])
def test_chunked_views_equal_the_whole_batch_views(cfg, threads, monkeypatch):
    import threading
    from simclr_core.augment import pipeline
    images = torch.randint(0, 256, (11, 3, 24, 24), dtype=torch.uint8, generator=gen(20))
    aug = build_augmentation(cfg, 16, MEAN, STD)
    whole = aug(images, gen(21))
    monkeypatch.setattr(pipeline, "CPU_CHUNK_BYTES", 4 * 2 * 3 * 24 * 24 * 4)   # 4 images per chunk
    assert aug.chunk_rows(24, 24) == 4
    chunks = []
    views = pipeline.TwoViewAugmentation._views
    monkeypatch.setattr(pipeline.TwoViewAugmentation, "_views",
                        lambda self, images, params, out=None, **kw: chunks.append(
                            (len(images), threading.current_thread().name, torch.get_num_threads()))
                        or views(self, images, params, out=out, **kw))
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        chunked = aug(images, gen(21))
    finally:
        torch.set_num_threads(previous)
    assert sorted(size for size, _, _ in chunks) == [3, 4, 4]
    if threads == 1:                          # one chunk after another on the caller's thread
        assert {name for _, name, _ in chunks} == {threading.current_thread().name}
    else:                                     # side by side on single-threaded workers
        assert all(name.startswith("simclr-augment") and count == 1 for _, name, count in chunks)
    for a, b in zip(whole, chunked):
        assert b.shape == a.shape
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0)


def test_cifar_batches_are_never_split_and_224px_ones_are():
    aug = build_augmentation(AugmentConfig(), 32, MEAN, STD)
    assert aug.chunk_rows(32, 32) >= 512
    assert 8 <= build_augmentation(AugmentConfig(), 224, MEAN, STD).chunk_rows(224, 224) < 64


@pytest.mark.parametrize("size, memory_format", [
    (16, torch.contiguous_format), (16, torch.channels_last), (224, torch.channels_last),   # 224: chunked
])
def test_views_written_into_out_equal_the_returned_views(size, memory_format):
    images = torch.randint(0, 256, (20, 3, size, size), dtype=torch.uint8, generator=gen(22))
    cfg = AugmentConfig(ops=("crop", "color", "blur"), color_strength=1.0)
    aug = build_augmentation(cfg, size, MEAN, STD)
    expected = aug(images, gen(23))
    out = torch.full((40, 3, size, size), float("nan")).contiguous(memory_format=memory_format)
    v1, v2 = aug(images, gen(23), out=out)
    assert v1.data_ptr() == out.data_ptr() and out.is_contiguous(memory_format=memory_format)
    torch.testing.assert_close(out[:20], expected[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(out[20:], expected[1], atol=1e-6, rtol=0)
    torch.testing.assert_close(v2, expected[1], atol=1e-6, rtol=0)


def same_as_both(alone: torch.Tensor, of_both: torch.Tensor) -> None:
    """Bit for bit on a CPU. On CUDA a per-image mean over 12 rows and over 24 is summed in another order (the
    reduction's blocks follow the row count), so there within float32 rounding."""
    if alone.is_cuda:
        torch.testing.assert_close(alone, of_both, atol=1e-4, rtol=0)
    else:
        assert torch.equal(alone, of_both)


@pytest.mark.parametrize("cfg", [
    AugmentConfig(ops=("crop", "color", "blur", "cutout", "rotate", "noise", "sobel")),
    AugmentConfig(ops=("crop", "color", "blur", "rotate"), one_branch=True),
    AugmentConfig(ops=("color", "blur")),                                 # no crop: resized first
    AugmentConfig(ops=("color", "crop", "blur")),                         # a crop after another op
])
@pytest.mark.parametrize("size", [16, 224])                              # 224: chunked on a CPU
@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_view_one_alone_equals_the_first_of_both_views_and_skips_view_two(cfg, size, device, monkeypatch):
    from simclr_core.augment import pipeline
    images = torch.randint(0, 256, (12, 3, 24, 24), dtype=torch.uint8, generator=gen(40)).to(device)
    aug = build_augmentation(cfg, size, MEAN, STD)
    both, both_gen = aug(images, gen(41)), gen(41)
    aug(images, both_gen)
    made = []                                  # rows of every view tensor the ops start from
    rest = pipeline.TwoViewAugmentation._rest
    monkeypatch.setattr(pipeline.TwoViewAugmentation, "_rest",
                        lambda self, x, *args: made.append(x.shape[0]) or rest(self, x, *args))
    one_gen = gen(41)
    out = torch.full((12, 3, size, size), float("nan"), device=device).contiguous(memory_format=torch.channels_last)
    first = aug.first_view(images, one_gen, out=out)
    assert first.data_ptr() == out.data_ptr() and first.shape == both[0].shape
    same_as_both(first, both[0])
    assert sum(made) == 12                     # view 1's rows only (in chunks on a CPU at 224 px)
    assert torch.equal(torch.rand(4, generator=one_gen), torch.rand(4, generator=both_gen))   # the same draws
    same_as_both(aug.first_view(images, gen(41)), both[0])              # without `out`
    with pytest.raises(ValueError, match=r"shape \(12, 3, %d, %d\) .*view 1 of 12 images" % (size, size)):
        aug.first_view(images, gen(41), out=torch.empty((24, 3, size, size), device=device))


@pytest.mark.parametrize("bad", [torch.empty(10, 3, 16, 16), torch.empty(20, 3, 12, 12),
                                 torch.empty(20, 3, 16, 16, dtype=torch.float64)])
def test_an_out_of_the_wrong_shape_or_dtype_is_refused_naming_the_one_expected(bad):
    aug = build_augmentation(AugmentConfig(), 16, MEAN, STD)
    with pytest.raises(ValueError, match=r"float32 tensor of shape \(20, 3, 16, 16\)"):
        aug(torch.zeros(10, 3, 16, 16, dtype=torch.uint8), gen(0), out=bad)


def test_take_rows_indexes_per_sample_tensors_and_keeps_shared_values():
    from simclr_core.augment.ops import take_rows
    params = (torch.arange(6), 23, torch.arange(12).view(6, 2))
    rows = torch.tensor([1, 4])
    taken = take_rows(params, rows)
    assert taken[1] == 23 and torch.equal(taken[0], rows) and torch.equal(taken[2], params[2][rows])


@pytest.mark.parametrize("name", ["color", "blur"])
def test_ops_and_the_pipeline_never_write_into_the_callers_images(name):
    x = torch.rand(64, 3, 24, 24, generator=gen(30))
    before = x.clone()
    cfg = AugmentConfig(ops=(name,), blur_prob=1.0)
    out = OPS[name](cfg, 24)(x, gen(31))
    assert torch.equal(x, before) and not torch.equal(out, x)
    build_augmentation(cfg, 24, MEAN, STD)(x, gen(32))                    # float input, no crop, same size
    assert torch.equal(x, before)


# ---- every ordered pair of ops, as Figure 5 composes them ----------------------------------------
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("one_branch", [False, True])
@pytest.mark.parametrize("second", sorted(OPS))
@pytest.mark.parametrize("first", sorted(OPS))
def test_every_ordered_pair_of_ops_composes(first, second, one_branch, device, monkeypatch):
    """Each op's output is a valid input to every other op (an op may write into its input in place, so a
    view that shares memory, such as an expanded grey channel, must not leave an op)."""
    from simclr_core.augment import native

    images = uint8_images(n=6, h=20, w=20, seed=3).to(device)       # square: rotate may come before crop
    ops = (first,) if first == second else (first, second)
    aug = build_augmentation(AugmentConfig(ops=ops, one_branch=one_branch), 16, MEAN, STD)
    v1, v2 = aug(images, gen(4))
    assert v1.shape == v2.shape == (6, 3, 16, 16) and v1.device.type == device
    raw = torch.cat((v1, v2)) * torch.tensor(STD, device=device).view(1, 3, 1, 1) \
        + torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    assert torch.isfinite(raw).all() and raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5
    monkeypatch.setattr(native, "kernels", lambda: None)            # the eager kernels give the same views
    for fast, eager in zip((v1, v2), aug(images, gen(4))):
        if second == "equalize" and first != second:
            # Equalisation quantises to 256 levels and remaps them by the histogram, so a last-bit difference
            # of the op before it may move a pixel to the next level: a few pixels differ, the rest agree.
            assert ((fast - eager).abs() > 5e-5).float().mean() < 0.02
        else:
            torch.testing.assert_close(fast, eager, atol=5e-5, rtol=0)
