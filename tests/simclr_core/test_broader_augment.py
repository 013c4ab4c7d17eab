"""Appendix B.2's broader augmentation ops (equalize, solarize, motion blur) against independent references:
torchvision's equalize and solarize on the same uint8 images, and a float64 textbook loop for the motion blur; each
applied with its probability, from the generator alone, and refused naming its key when out of range."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from registry.run_id import config_hash, semantic_dict
from simclr_core.augment import OPS, build_augmentation, functional as F
from simclr_core.config import AugmentConfig, RunConfig
from simclr_core.validation import ConfigError


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def uint8_images(n=5, h=17, w=13, seed=0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, h, w), generator=gen(seed), dtype=torch.uint8)


def test_equalize_equals_torchvisions_on_the_same_uint8_images_including_flat_and_two_level_channels():
    images = uint8_images()
    images[0, 1] = 77                                       # one level: left as it is
    images[1, 2] = torch.where(torch.rand(17, 13, generator=gen(1)) < 0.5, 10, 200).to(torch.uint8)
    images[2, 0, 0, 0] = 255                                # one pixel at the top level
    ours = F.equalize(images.float() / 255)
    theirs = torch.stack([TF.equalize(image) for image in images]).float() / 255
    assert torch.equal(ours, theirs)


def test_solarize_inverts_the_values_at_or_above_the_threshold():
    x = torch.tensor([0.0, 0.25, 0.4999, 0.5, 0.75, 1.0]).view(1, 1, 1, 6).expand(1, 3, 1, 6)
    assert F.solarize(x, 0.5)[0, 0, 0].tolist() == pytest.approx([0.0, 0.25, 0.4999, 0.5, 0.25, 0.0])
    images = uint8_images(seed=2)
    theirs = torch.stack([TF.solarize(image, 128) for image in images]).float() / 255
    torch.testing.assert_close(F.solarize(images.float() / 255, 128 / 255), theirs, atol=1e-6, rtol=0)


def textbook_motion_kernel(k: int, angle: float) -> np.ndarray:
    """The kernel by loops in float64: offset (row r, column c) from the centre weighs 1 - its distance to the line
    through the centre along (cos a, -sin a) in (column, row), if within k/2 of the centre along it."""
    radius = k // 2
    kernel = np.zeros((k, k))
    for r in range(-radius, radius + 1):
        for c in range(-radius, radius + 1):
            along = c * math.cos(angle) - r * math.sin(angle)
            distance = abs(c * math.sin(angle) + r * math.cos(angle))
            if abs(along) <= radius + 0.5:
                kernel[r + radius, c + radius] = max(0.0, 1.0 - distance)
    return kernel / kernel.sum()


def textbook_motion_blur(image: np.ndarray, k: int, angle: float) -> np.ndarray:
    """Correlation with the kernel, reflect padding (torch's 'reflect': the edge pixel is not repeated)."""
    kernel, radius = textbook_motion_kernel(k, angle), k // 2
    channels, h, w = image.shape
    out = np.zeros_like(image)

    def reflect(i, n):
        return -i if i < 0 else 2 * (n - 1) - i if i >= n else i
    for ch in range(channels):
        for y in range(h):
            for x in range(w):
                out[ch, y, x] = sum(kernel[dy + radius, dx + radius] * image[ch, reflect(y + dy, h), reflect(x + dx, w)]
                                    for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1))
    return out


@pytest.mark.parametrize("k", [3, 5])
def test_motion_blur_equals_a_float64_textbook_loop_at_each_images_own_angle(k):
    x = torch.rand(4, 3, 9, 11, generator=gen(3))
    angles = torch.tensor([0.0, math.pi / 2, math.pi / 4, 2.0])
    ours = F.motion_blur(x, angles, k)
    for i, angle in enumerate(angles.tolist()):
        expected = textbook_motion_blur(x[i].double().numpy(), k, angle)
        np.testing.assert_allclose(ours[i].numpy(), expected, atol=1e-5)
    horizontal = F.motion_blur_kernels(k, torch.tensor([0.0]))[0]
    assert torch.allclose(horizontal[k // 2], torch.full((k,), 1.0 / k)) and horizontal.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["equalize", "solarize", "motion_blur"])
def test_each_view_gets_the_op_with_its_probability_and_the_rest_are_untouched(name):
    x = torch.rand(400, 3, 32, 32, generator=gen(4)) * 0.6 + 0.2      # 32 px: a 3-pixel motion
    out = OPS[name](AugmentConfig(**{f"{name}_prob": 0.3}), 32)(x, gen(5))
    changed = (out != x).flatten(1).any(1)
    assert abs(changed.float().mean().item() - 0.3) < 4.5 * (0.3 * 0.7 / 400) ** 0.5
    every = OPS[name](AugmentConfig(**{f"{name}_prob": 1.0}), 32)(x, gen(5))
    assert torch.equal(out[changed], every[changed])        # the same angles: the mask is drawn first
    assert torch.equal(OPS[name](AugmentConfig(**{f"{name}_prob": 0.0}), 32)(x, gen(5)), x)


def test_the_broader_keys_are_checked_and_leave_every_other_runs_id_as_it_was():
    for key, bad in (("equalize_prob", 1.5), ("solarize_threshold", -0.1), ("motion_blur_fraction", 0.0)):
        with pytest.raises(ConfigError, match=f"augment.{key}"):
            build_augmentation(AugmentConfig(**{key: bad}), 16, (0.5,) * 3, (0.2,) * 3)
    plain = RunConfig()
    assert "equalize_prob" not in str(semantic_dict(plain))
    changed = plain.with_overrides({"augment.ops": ("crop", "solarize"), "augment.solarize_prob": 0.5})
    assert config_hash(changed) != config_hash(plain.with_overrides({"augment.ops": ("crop", "solarize")}))
