"""Crops from each image's own size (augment/originals.py): against a float64 torchvision reference for fixed
boxes, both implementations (per view on CPUs, batched matrices on GPUs), and the two-view entry point."""
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from simclr_core.augment import build_augmentation, sampling
from simclr_core.augment.originals import _batched, central_boxes, resample_weights, resized_crops
from simclr_core.config import AugmentConfig
from simclr_core.validation import ConfigError

SIZES = [(50, 80), (600, 437), (224, 224), (37, 300), (413, 61)]
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images_of(sizes, seed=0, channels=3):
    g = gen(seed)
    return [torch.randint(0, 256, (channels, h, w), dtype=torch.uint8, generator=g) for h, w in sizes]


def random_boxes(sizes, views, seed=1):
    g, boxes = gen(seed), []
    for v in range(views):
        h, w = sizes[v % len(sizes)]
        bh, bw = (int(torch.randint(1, s + 1, (1,), generator=g)) for s in (h, w))
        boxes.append([int(torch.randint(0, h - bh + 1, (1,), generator=g)),
                      int(torch.randint(0, w - bw + 1, (1,), generator=g)), bh, bw])
    return torch.tensor(boxes)


def reference(images, boxes, size, flip):
    """torchvision's resized_crop(antialias=True) on each float64 image, then hflip."""
    out = []
    for v, box in enumerate(boxes.tolist()):
        image = images[v % len(images)].double().expand(3, -1, -1) / 255
        view = TF.resized_crop(image, *box, [size, size], antialias=True)
        out.append(view.flip(-1) if flip[v] else view)
    return torch.stack(out).clamp(0, 1)


@pytest.mark.parametrize("size", [16, 64, 224])
@pytest.mark.parametrize("channels", [1, 3])
def test_crops_equal_torchvision_antialiased_resized_crop_in_float64(size, channels):
    images = images_of(SIZES, channels=channels)
    boxes = random_boxes(SIZES, 2 * len(SIZES))
    flip = torch.arange(len(boxes)) % 3 == 0
    expected = reference(images, boxes, size, flip)
    # the CPU path resizes uint8 crops: whole grey levels, within one of the float64 value
    torch.testing.assert_close(resized_crops(images, boxes, size, flip).double(), expected, atol=1 / 255 + 1e-6,
                               rtol=0)
    batched = _batched(images, boxes, size, dtype=torch.float64)          # the CUDA formula, run here
    batched = torch.where(flip.view(-1, 1, 1, 1), batched.flip(3), batched).clamp(0, 1)
    torch.testing.assert_close(batched.double(), expected, atol=1e-6, rtol=0)


def test_resampling_rows_sum_to_one_and_stay_inside_their_segment():
    start, length = torch.tensor([0, 5, 100, 7]), torch.tensor([10, 300, 1, 40])
    weights = resample_weights(start, length, 32, 420, torch.float64)
    torch.testing.assert_close(weights.sum(dim=2), torch.ones(4, 32, dtype=torch.float64))
    position = torch.arange(420)
    outside = (position < start.view(-1, 1)) | (position >= (start + length).view(-1, 1))
    assert (weights.masked_select(outside.unsqueeze(1).expand_as(weights)) == 0).all()


def test_per_sample_boxes_fit_their_own_image_and_match_the_shared_size_draws():
    heights, widths = torch.tensor([50, 600, 37, 413] * 64), torch.tensor([80, 437, 300, 61] * 64)
    boxes = sampling.crop_boxes(256, heights, widths, (0.08, 1.0), (3 / 4, 4 / 3), gen(2))
    top, left, h, w = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (h >= 1).all() and (w >= 1).all()
    assert (top + h <= heights).all() and (left + w <= widths).all()
    for i, (height, width) in enumerate(zip((50, 600, 37, 413), (80, 437, 300, 61))):   # row by row, the same
        shared = sampling.crop_boxes(256, height, width, (0.08, 1.0), (3 / 4, 4 / 3), gen(2))     # draws
        assert torch.equal(boxes[i::4], shared[i::4])
    same = sampling.crop_boxes(64, torch.full((64,), 375), torch.full((64,), 500), (0.08, 1.0), (3 / 4, 4 / 3), gen(3))
    assert torch.equal(same, sampling.crop_boxes(64, 375, 500, (0.08, 1.0), (3 / 4, 4 / 3), gen(3)))


def test_each_view_comes_from_its_own_image():
    sizes = [(40, 90), (300, 120), (64, 64)]
    images = [torch.full((3, h, w), 40 * (i + 1), dtype=torch.uint8) for i, (h, w) in enumerate(sizes)]
    aug = build_augmentation(AugmentConfig(ops=("crop",)), 24, (0.0,) * 3, (1.0,) * 3)
    v1, v2 = aug.views_from_originals(images, gen(0))
    for i in range(3):
        for view in (v1[i], v2[i]):
            torch.testing.assert_close(view, torch.full_like(view, 40 * (i + 1) / 255), atol=1e-6, rtol=0)


@pytest.mark.parametrize("ops, one_branch", [(("crop", "color", "blur"), False), (("crop", "rotate", "sobel"), True),
                                             (("color",), False), (("crop", "noise", "cutout"), False)])
def test_two_views_from_originals_keep_the_contract(ops, one_branch):
    images = images_of(SIZES, seed=4)
    aug = build_augmentation(AugmentConfig(ops=ops, one_branch=one_branch), 32, MEAN, STD)
    v1, v2 = aug.views_from_originals(images, gen(5))
    assert v1.shape == v2.shape == (len(SIZES), 3, 32, 32) and torch.isfinite(torch.cat((v1, v2))).all()
    again = aug.views_from_originals(images, gen(5))
    assert torch.equal(v1, again[0]) and torch.equal(v2, again[1])
    out = torch.empty((2 * len(SIZES), 3, 32, 32)).to(memory_format=torch.channels_last)
    w1, w2 = aug.views_from_originals(images, gen(5), out=out)
    assert w1.data_ptr() == out.data_ptr() and torch.equal(w1, v1) and torch.equal(w2, v2)
    if one_branch:                                            # view 2 is the crop alone
        boxes, flip = aug.both[0][1].draw(2 * len(SIZES), torch.tensor(SIZES)[:, 0].repeat(2),
                                          torch.tensor(SIZES)[:, 1].repeat(2), images[0].device, gen(5))
        plain = (resized_crops(images, boxes, 32, flip)[len(SIZES):] - 0.5) / 0.25
        torch.testing.assert_close(v2, plain, atol=1e-5, rtol=0)


@pytest.mark.parametrize("ops, one_branch", [(("crop", "color", "blur"), False), (("crop", "rotate", "sobel"), True),
                                             (("color",), False)])
def test_view_one_alone_from_originals_equals_the_first_of_both_views(ops, one_branch):
    images = images_of(SIZES, seed=6)
    aug = build_augmentation(AugmentConfig(ops=ops, one_branch=one_branch), 32, MEAN, STD)
    both_gen, one_gen = gen(7), gen(7)
    v1, _ = aug.views_from_originals(images, both_gen)
    out = torch.empty((len(SIZES), 3, 32, 32)).to(memory_format=torch.channels_last)
    first = aug.first_view_from_originals(images, one_gen, out=out)
    assert first.data_ptr() == out.data_ptr() and torch.equal(first, v1)
    assert torch.equal(torch.rand(4, generator=one_gen), torch.rand(4, generator=both_gen))   # the same draws


def test_without_a_crop_each_image_gives_its_centred_square():
    assert central_boxes(torch.tensor([[50, 80], [90, 30]])).tolist() == [[0, 15, 50, 50], [30, 0, 30, 30]]


def test_a_crop_after_another_op_is_refused_for_images_of_different_sizes():
    aug = build_augmentation(AugmentConfig(ops=("color", "crop")), 32, MEAN, STD)
    with pytest.raises(ConfigError, match="need 'crop' first"):
        aug.views_from_originals(images_of(SIZES), gen(0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_crops_equal_the_cpu_crops_without_a_host_sync():
    images = images_of(SIZES)
    boxes = random_boxes(SIZES, 2 * len(SIZES))
    flip = torch.arange(len(boxes)) % 2 == 0
    cpu = resized_crops(images, boxes, 64, flip)
    cuda_images = [x.cuda() for x in images]
    aug = build_augmentation(AugmentConfig(), 64, MEAN, STD)
    torch.cuda.set_sync_debug_mode("error")
    try:
        gpu = resized_crops(cuda_images, boxes, 64, flip)
        aug.views_from_originals(cuda_images, gen(0))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    # the CPU path rounds its crops to whole grey levels; the CUDA path resizes in float32
    torch.testing.assert_close(gpu.cpu().double(), reference(images, boxes, 64, flip), atol=1e-4, rtol=0)
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1 / 255 + 1e-4, rtol=0)


@pytest.mark.parametrize("budget", [1 << 30, 3 * 300 * 300 * 8])     # one group; about one image per group
def test_batched_crops_in_memory_bounded_groups_equal_the_reference(budget, monkeypatch):
    from simclr_core.augment import originals

    monkeypatch.setattr(originals, "BATCHED_BYTES", budget)
    images = images_of(SIZES, seed=7)
    boxes = random_boxes(SIZES, 3 * len(SIZES), seed=8)                 # three views per image
    expected = reference(images, boxes, 24, torch.zeros(len(boxes), dtype=torch.bool))
    got = _batched(images, boxes, 24, dtype=torch.float64)
    torch.testing.assert_close(got.double().clamp(0, 1), expected, atol=1e-6, rtol=0)
    groups = originals._groups([(int(x.shape[-2]), int(x.shape[-1])) for x in images], 8)
    assert (len(groups) == 1) == (budget == 1 << 30)
