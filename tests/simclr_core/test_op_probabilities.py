"""Sobel, noise and rotation applied to each view with a probability (augment.sobel_prob, noise_prob,
rotate_prob): at the default 1.0 the ops are what they were (same output, same draws), at p each view is
transformed with probability p, at 0 never, and a probability outside [0, 1] is refused naming its key."""
from __future__ import annotations

import pytest
import torch

from registry.run_id import config_hash, semantic_dict
from simclr_core.augment import OPS, build_augmentation, functional as F, sampling
from simclr_core.config import AugmentConfig, RunConfig
from simclr_core.validation import ConfigError

SIDE = 12
KEYS = {"sobel": "sobel_prob", "noise": "noise_prob", "rotate": "rotate_prob"}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int, seed: int = 0) -> torch.Tensor:
    """Float images in [0.2, 0.8]: noise of std <= 0.1 moves every row, and no two quarter turns agree."""
    return torch.rand(n, 3, SIDE, SIDE, generator=gen(seed)) * 0.6 + 0.2


def changed(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (out != x).flatten(1).any(1)


def within_binomial(successes: int, n: int, p: float) -> bool:
    """|successes / n - p| within 4.5 standard deviations of a Binomial(n, p) proportion."""
    return abs(successes / n - p) <= 4.5 * (p * (1 - p) / n) ** 0.5


# The ops as they were before the probabilities: what their defaults must still give, with the same draws.
def _sobel_before(x, g):
    return F.sobel(x)


def _noise_before(x, g):
    std = sampling.uniform(x.shape[0], *AugmentConfig().noise_std, g)
    return F.add_gaussian_noise(x, std, torch.randn(x.shape, generator=g))


def _rotate_before(x, g):
    return F.rotate90(x, sampling.quarter_turns(x.shape[0], g))


@pytest.mark.parametrize("name, before", [("sobel", _sobel_before), ("noise", _noise_before),
                                          ("rotate", _rotate_before)])
def test_the_default_probability_gives_the_op_as_before_bit_for_bit(name, before):
    x = images(9)
    ours, theirs = gen(3), gen(3)
    out = OPS[name](AugmentConfig(), SIDE)(x, ours)
    assert getattr(AugmentConfig(), KEYS[name]) == 1.0
    assert torch.equal(out, before(x, theirs))
    assert torch.equal(ours.get_state(), theirs.get_state())       # no extra draw: later ops see the same stream


def test_default_probabilities_keep_run_ids_and_others_change_them():
    base = RunConfig().with_overrides({"augment.ops": ("crop", "color", "sobel")})
    explicit = base.with_overrides({f"augment.{key}": 1.0 for key in KEYS.values()})
    assert config_hash(explicit) == config_hash(base)
    assert not {"sobel_prob", "noise_prob", "rotate_prob"} & set(semantic_dict(base)["augment"])
    halved = base.with_overrides({"augment.sobel_prob": 0.5})
    assert semantic_dict(halved)["augment"]["sobel_prob"] == 0.5 and config_hash(halved) != config_hash(base)


@pytest.mark.parametrize("name", sorted(KEYS))
def test_probability_zero_leaves_every_image_unchanged_bit_for_bit(name):
    x = images(64, seed=1)
    out = OPS[name](AugmentConfig(**{KEYS[name]: 0.0}), SIDE)(x, gen(4))
    assert torch.equal(out, x)


@pytest.mark.parametrize("name", ["sobel", "noise"])
@pytest.mark.parametrize("p", [0.3, 0.5])
def test_each_view_is_transformed_with_the_probability_and_as_at_probability_one(name, p):
    n = 4000
    x = images(n, seed=2)
    out = OPS[name](AugmentConfig(**{KEYS[name]: p}), SIDE)(x, gen(5))
    hit = changed(out, x)
    assert within_binomial(int(hit.sum()), n, p), hit.float().mean()
    assert torch.equal(out[~hit], x[~hit])
    if name == "sobel":
        torch.testing.assert_close(out[hit], F.sobel(x[hit]), atol=1e-6, rtol=0)
    else:       # the mask is drawn after std and noise: a corrupted view carries the noise it gets at p = 1
        assert torch.equal(out[hit], OPS[name](AugmentConfig(), SIDE)(x, gen(5))[hit])


def test_rotate_prob_three_quarters_draws_every_angle_a_quarter_of_the_time():
    n = 8000
    op = OPS["rotate"](AugmentConfig(rotate_prob=0.75), SIDE)
    (turns,) = op.draw(n, SIDE, SIDE, torch.device("cpu"), gen(6))
    counts = torch.bincount(turns, minlength=4)
    assert counts.numel() == 4 and all(within_binomial(int(c), n, 0.25) for c in counts), counts
    (turns,) = OPS["rotate"](AugmentConfig(rotate_prob=0.3), SIDE).draw(n, SIDE, SIDE, torch.device("cpu"), gen(7))
    counts = torch.bincount(turns, minlength=4)
    assert within_binomial(int(counts[0]), n, 0.7)                   # upright: 1 - rotate_prob
    assert all(within_binomial(int(c), n, 0.1) for c in counts[1:])  # each turn: rotate_prob / 3


def test_a_rotated_view_is_its_image_turned_by_its_drawn_angle():
    x = images(200, seed=3)
    op = OPS["rotate"](AugmentConfig(rotate_prob=0.75), SIDE)
    (turns,) = op.draw(200, SIDE, SIDE, x.device, gen(8))
    out = op(x, gen(8))
    assert set(turns.tolist()) == {0, 1, 2, 3}
    for i, k in enumerate(turns.tolist()):
        assert torch.equal(out[i], torch.rot90(x[i], k, dims=(-2, -1)))


@pytest.mark.parametrize("name", sorted(KEYS))
def test_draws_come_from_the_given_generator_only(name):
    x = images(32, seed=4)
    op = OPS[name](AugmentConfig(**{KEYS[name]: 0.5}), SIDE)
    torch.manual_seed(1)
    first = op(x, gen(9))
    torch.manual_seed(2)
    assert torch.equal(op(x, gen(9)), first)
    assert not torch.equal(op(x, gen(10)), first)


def test_chunked_views_with_probabilities_equal_the_whole_batch_views(monkeypatch):
    from simclr_core.augment import pipeline
    cfg = AugmentConfig(ops=("crop", "color", "rotate", "noise", "sobel"), rotate_prob=0.75, noise_prob=0.5,
                        sobel_prob=0.5)
    mean, std = (0.5,) * 3, (0.25,) * 3
    batch = torch.randint(0, 256, (11, 3, 24, 24), dtype=torch.uint8, generator=gen(11))
    aug = build_augmentation(cfg, 16, mean, std)
    whole = aug(batch, gen(12))
    monkeypatch.setattr(pipeline, "CPU_CHUNK_BYTES", 4 * 2 * 3 * 24 * 24 * 4)   # 4 images per chunk
    assert aug.chunk_rows(24, 24) == 4
    for a, b in zip(whole, aug(batch, gen(12))):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0)


@pytest.mark.parametrize("key", sorted(KEYS.values()))
@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_a_probability_outside_zero_one_is_refused_naming_the_key(key, value):
    with pytest.raises(ConfigError) as err:
        build_augmentation(AugmentConfig(**{key: value}), 16, (0.5,) * 3, (0.25,) * 3)
    assert f"augment.{key}={value!r}" in str(err.value) and "[0, 1]" in str(err.value), str(err.value)
    with pytest.raises(ConfigError, match=f"augment.{key}="):
        RunConfig().with_overrides({f"augment.{key}": str(value)}).validate()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_batch_gives_the_cpu_views_with_probabilities():
    cfg = AugmentConfig(ops=("crop", "color", "rotate", "sobel"), rotate_prob=0.75, sobel_prob=0.5)
    batch = torch.randint(0, 256, (16, 3, 20, 24), dtype=torch.uint8, generator=gen(13))
    cpu = build_augmentation(cfg, 16, (0.5,) * 3, (0.25,) * 3)(batch, gen(14))
    gpu = build_augmentation(cfg, 16, (0.5,) * 3, (0.25,) * 3)(batch.cuda(), gen(14))
    for a, b in zip(cpu, gpu):
        torch.testing.assert_close(b.cpu(), a, atol=1e-4, rtol=0)
