"""Evaluation protocols: kNN against a brute-force float64 transcription, linear evaluation on a frozen
encoder (and the guard that proves it frozen), fine-tuning of a copy on a class-balanced subset."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from simclr_core.evaluate import (balanced_subset, extract_features, finetune_eval, knn_classify, knn_eval,
                                  linear_eval)
from simclr_core.evaluate.frozen import changed_tensors, snapshot_state
from simclr_core.validation import ConfigError

MEAN = (0.5, 0.4, 0.3)
STD = (0.25, 0.2, 0.3)
NUM_CLASSES = 4
# One distinct colour per class; images are that colour plus uniform noise.
CLASS_COLOURS = torch.tensor([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]])


def colour_images(per_class: int, seed: int, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (per_class * 4, 3, size, size) images whose class is their colour, sorted by class."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(NUM_CLASSES).repeat_interleave(per_class)
    noise = torch.randint(-40, 41, (labels.numel(), 3, size, size), generator=g)
    images = (CLASS_COLOURS[labels].view(-1, 3, 1, 1) + noise).clamp(0, 255).to(torch.uint8)
    return images, labels


def small_encoder(seed: int = 0, width: int = 16) -> nn.Sequential:
    """conv -> BatchNorm -> ReLU -> global average pool: images (B, 3, H, W) -> h (B, width)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())


class CountingEncoder(nn.Module):
    """Counts its forward calls in a Python attribute (not state): shows whether compute started."""

    def __init__(self) -> None:
        super().__init__()
        self.body = small_encoder()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.body(x)


class BufferMutatingEncoder(nn.Module):
    """A broken encoder: every forward increments a buffer, in eval mode too."""

    def __init__(self) -> None:
        super().__init__()
        self.body = small_encoder()
        self.register_buffer("forward_count", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forward_count += 1
        return self.body(x)


def assert_same_state(before: dict[str, torch.Tensor], module: nn.Module) -> None:
    assert changed_tensors(module, before) == []
    assert any("running_mean" in name for name in before) and any("num_batches_tracked" in n for n in before)


@pytest.fixture(scope="module")
def colour_data():
    train_images, train_labels = colour_images(per_class=24, seed=1)
    test_images, test_labels = colour_images(per_class=10, seed=2)
    return train_images, train_labels, test_images, test_labels


def int32_labels(data):
    """The same split with int32 labels: protocols must not assume int64 class indices."""
    train_images, train_labels, test_images, test_labels = data
    return train_images, train_labels.int(), test_images, test_labels.int()


# ---- extract_features ---------------------------------------------------------------------------
def test_extract_features_is_the_eval_forward_of_normalised_images_and_restores_modes():
    images, _ = colour_images(per_class=3, seed=0)                 # 12 images, batches of 5, 5, 2
    encoder = small_encoder()
    encoder[1].running_mean.uniform_(-0.5, 0.5)                    # eval-mode BN must use these
    encoder.train()                                                # train-mode BN would use batch stats
    before = snapshot_state(encoder)

    features = extract_features(encoder, images, mean=MEAN, std=STD, batch_size=5)

    x = (images.double() / 255 - torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)) \
        / torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)
    reference = encoder.double().eval()(x)
    encoder.float().train()
    assert features.dtype == torch.float32 and features.shape == (12, 16)
    torch.testing.assert_close(features.double(), reference, rtol=1e-5, atol=1e-5)
    assert_same_state(before, encoder)


def test_extract_features_restores_each_module_flag():
    images, _ = colour_images(per_class=1, seed=0)
    encoder = small_encoder().train()
    encoder[1].eval()
    extract_features(encoder, images, mean=MEAN, std=STD)
    assert [m.training for m in encoder.modules()] == [True, True, False, True, True, True]


def test_extract_features_bf16_autocast_is_close_to_fp32_and_returns_fp32():
    images, _ = colour_images(per_class=2, seed=0)
    encoder = small_encoder()
    full = extract_features(encoder, images, mean=MEAN, std=STD)
    half = extract_features(encoder, images, mean=MEAN, std=STD, autocast_dtype=torch.bfloat16,
                            channels_last=True)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, full, rtol=0.05, atol=0.05)


def test_extract_features_rejects_unpooled_encoder_output():
    images, _ = colour_images(per_class=1, seed=0)
    with pytest.raises(ValueError, match="features \\(B, D\\)"):
        extract_features(nn.Conv2d(3, 4, 1), images, mean=MEAN, std=STD)


# ---- kNN ----------------------------------------------------------------------------------------
def brute_force_knn(train, train_labels, test, *, k, temperature, num_classes):
    """Wu et al. 2018 weighted kNN, one test point at a time, float64, exp without any shift."""
    train, test, train_labels = train.double().tolist(), test.double().tolist(), train_labels.tolist()
    predictions = []
    for query in test:
        q_norm = math.sqrt(sum(v * v for v in query))
        sims = []
        for i, point in enumerate(train):
            p_norm = math.sqrt(sum(v * v for v in point))
            cosine = sum(a * b for a, b in zip(query, point)) / (q_norm * p_norm)
            sims.append((cosine, i))
        neighbours = sorted(sims, reverse=True)[:k]
        votes = [0.0] * num_classes
        for cosine, i in neighbours:
            votes[train_labels[i]] += math.exp(cosine / temperature)
        predictions.append(max(range(num_classes), key=lambda c: (votes[c], -c)))
    return torch.tensor(predictions)


@pytest.mark.parametrize("k,temperature", [(1, 0.1), (5, 0.07), (25, 0.5), (60, 0.1)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_knn_classify_matches_brute_force_reference(k, temperature, dtype):
    g = torch.Generator().manual_seed(k)
    train = torch.randn(60, 8, generator=g, dtype=torch.float64)
    train_labels = torch.randint(0, 5, (60,), generator=g)
    test = torch.randn(30, 8, generator=g, dtype=torch.float64)
    expected = brute_force_knn(train, train_labels, test, k=k, temperature=temperature, num_classes=5)
    got = knn_classify(train.to(dtype), train_labels, test.to(dtype), k=k, temperature=temperature,
                       num_classes=5, chunk_size=7)
    assert got.dtype == torch.int64
    assert torch.equal(got, expected)
    assert len(set(expected.tolist())) > 1                             # not a degenerate all-one-class case


def test_knn_weighted_vote_differs_from_majority_vote():
    # One class-0 neighbour almost on top of the query, two class-1 neighbours at 90 degrees.
    train = torch.tensor([[1.0, 0.05], [0.0, 1.0], [0.0, -1.0]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.0]])
    # temperature 0.1: weights exp(~9.99) vs 2 * exp(0) -> class 0, although class 1 has the majority.
    assert knn_classify(train, labels, query, k=3, temperature=0.1, num_classes=2).tolist() == [0]
    # A very large temperature flattens the weights to ~1 each: the majority wins.
    assert knn_classify(train, labels, query, k=3, temperature=1e4, num_classes=2).tolist() == [1]


def test_knn_small_temperature_does_not_overflow():
    g = torch.Generator().manual_seed(0)
    train, labels, test = torch.randn(40, 4, generator=g), torch.randint(0, 3, (40,), generator=g), \
        torch.randn(10, 4, generator=g)
    tiny = knn_classify(train, labels, test, k=10, temperature=1e-4, num_classes=3)   # exp(1e4) would be inf
    assert torch.equal(tiny, knn_classify(train, labels, test, k=1, temperature=0.1, num_classes=3))


def test_knn_k_larger_than_train_set_is_clipped():
    g = torch.Generator().manual_seed(3)
    train, labels, test = torch.randn(20, 6, generator=g), torch.randint(0, 3, (20,), generator=g), \
        torch.randn(15, 6, generator=g)
    clipped = knn_classify(train, labels, test, k=1000, temperature=0.2, num_classes=3)
    assert torch.equal(clipped, knn_classify(train, labels, test, k=20, temperature=0.2, num_classes=3))
    assert torch.equal(clipped, brute_force_knn(train, labels, test, k=20, temperature=0.2, num_classes=3))


def test_knn_separates_well_separated_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(10, 32, generator=g), dim=1) * 5
    train_labels = torch.arange(10).repeat(50)
    test_labels = torch.arange(10).repeat(20)
    train = centres[train_labels] + torch.randn(500, 32, generator=g)
    test = centres[test_labels] + torch.randn(200, 32, generator=g)
    predictions = knn_classify(train, train_labels, test, k=200, temperature=0.1, num_classes=10)
    assert (predictions == test_labels).float().mean() >= 0.99


def test_knn_eval_on_colour_classes(colour_data):
    encoder = small_encoder()
    result = knn_eval(encoder, *int32_labels(colour_data), mean=MEAN, std=STD, num_classes=NUM_CLASSES, k=20,
                      batch_size=32, chunk_size=16)
    assert set(result) == {"knn_top1", "knn_top5"}
    assert result["knn_top1"] >= 95.0 and result["knn_top5"] == 100.0


# ---- linear evaluation --------------------------------------------------------------------------
def test_linear_eval_learns_and_leaves_a_train_mode_encoder_untouched(colour_data):
    encoder = small_encoder().train()                              # BN in train mode before the call
    before = snapshot_state(encoder)
    kwargs = dict(mean=MEAN, std=STD, num_classes=NUM_CLASSES, epochs=30, batch_size=16, lr=0.5, seed=3)
    result = linear_eval(encoder, *colour_data, **kwargs)
    assert set(result) == {"linear_top1", "linear_top5"}
    assert result["linear_top1"] >= 95.0 and result["linear_top5"] == 100.0
    assert encoder.training and all(m.training for m in encoder.modules())
    assert_same_state(before, encoder)                             # running stats, num_batches_tracked too
    assert linear_eval(encoder, *colour_data, **kwargs) == result  # same seed, same numbers


def test_linear_eval_with_feature_batchnorm(colour_data):
    result = linear_eval(small_encoder(), *int32_labels(colour_data), mean=MEAN, std=STD,
                         num_classes=NUM_CLASSES, epochs=20, batch_size=17, lr=0.1, weight_decay=1e-4,
                         feature_bn=True, seed=0)
    assert result["linear_top1"] >= 95.0


def test_linear_eval_guard_fires_when_the_encoder_changes(colour_data):
    encoder = BufferMutatingEncoder().eval()
    with pytest.raises(RuntimeError, match="buffer:forward_count"):
        linear_eval(encoder, *colour_data, mean=MEAN, std=STD, num_classes=NUM_CLASSES, epochs=1)


def test_frozen_check_compares_bits_so_nan_weights_are_not_a_change():
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight[0, 0] = float("nan")
    before = snapshot_state(layer)
    assert changed_tensors(layer, before) == []
    with torch.no_grad():
        layer.bias.add_(1e-7)
    assert changed_tensors(layer, before) == ["param:bias"]


# ---- fine-tuning --------------------------------------------------------------------------------
def test_balanced_subset_takes_the_fraction_of_every_class():
    labels = torch.cat([torch.full((100,), 0), torch.full((50,), 2), torch.full((30,), 1),
                        torch.full((5,), 3)])[torch.randperm(185, generator=torch.Generator().manual_seed(0))]
    subset = balanced_subset(labels, 0.1, num_classes=5, seed=7)
    assert subset.unique().numel() == subset.numel() and torch.equal(subset, subset.sort().values)
    # round(0.1 * n_c) per class, at least one for a present class, none for the absent class 4
    assert torch.bincount(labels[subset], minlength=5).tolist() == [10, 3, 5, 1, 0]
    assert torch.equal(subset, balanced_subset(labels, 0.1, num_classes=5, seed=7))
    assert not torch.equal(subset, balanced_subset(labels, 0.1, num_classes=5, seed=8))
    assert torch.equal(balanced_subset(labels, 1.0, num_classes=5, seed=0), torch.arange(185))
    cifar_like = torch.arange(10).repeat_interleave(5000)
    one_percent = balanced_subset(cifar_like, 0.01, num_classes=10, seed=0)
    assert torch.bincount(cifar_like[one_percent]).tolist() == [50] * 10


def test_finetune_eval_learns_on_a_copy_and_is_deterministic(colour_data):
    encoder = small_encoder(seed=5).train()
    encoder[1].eval()
    before = snapshot_state(encoder)
    modes = [m.training for m in encoder.modules()]
    kwargs = dict(mean=MEAN, std=STD, num_classes=NUM_CLASSES, label_fraction=0.5, epochs=8, batch_size=8,
                  lr=0.05, seed=1)
    result = finetune_eval(encoder, *colour_data, **kwargs)
    assert set(result) == {"finetune_top1", "finetune_top5", "label_fraction"}
    assert result["label_fraction"] == 0.5
    assert result["finetune_top1"] >= 90.0
    assert_same_state(before, encoder)
    assert [m.training for m in encoder.modules()] == modes
    assert finetune_eval(encoder, *colour_data, **kwargs) == result


def test_finetune_eval_applies_the_augmentation(colour_data):
    seen = []

    def flip(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        seen.append((batch.dtype, batch.shape[0], isinstance(generator, torch.Generator)))
        flipped = torch.rand(batch.shape[0], generator=generator) < 0.5
        batch = torch.where(flipped.view(-1, 1, 1, 1), batch.flip(-1), batch)
        mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
        return (batch.float() / 255 - mean) / std

    result = finetune_eval(small_encoder(), *int32_labels(colour_data), mean=MEAN, std=STD,
                           num_classes=NUM_CLASSES, label_fraction=0.25, epochs=3, batch_size=8, lr=0.05,
                           seed=0, augment=flip)
    assert seen and all(s == (torch.uint8, 8, True) for s in seen)
    assert len(seen) == 3 * 3                                       # 24 images, batches of 8, 3 epochs
    assert 0.0 <= result["finetune_top1"] <= 100.0


# ---- argument checks ----------------------------------------------------------------------------
def _call(protocol, encoder, data, **overrides):
    if protocol == "knn":
        kwargs = dict(mean=MEAN, std=STD, num_classes=NUM_CLASSES, k=5)
        return knn_eval(encoder, *data, **{**kwargs, **overrides})
    if protocol == "linear":
        kwargs = dict(mean=MEAN, std=STD, num_classes=NUM_CLASSES, epochs=1)
        return linear_eval(encoder, *data, **{**kwargs, **overrides})
    kwargs = dict(mean=MEAN, std=STD, num_classes=NUM_CLASSES, label_fraction=0.5, epochs=1, batch_size=8,
                  lr=0.1, seed=0)
    return finetune_eval(encoder, *data, **{**kwargs, **overrides})


@pytest.mark.parametrize("protocol,overrides,named", [
    ("knn", {"k": 0}, "k=0"),
    ("knn", {"k": 2.5}, "k=2.5"),
    ("knn", {"temperature": 0.0}, "temperature=0.0"),
    ("knn", {"temperature": -1}, "temperature=-1"),
    ("knn", {"num_classes": 0}, "num_classes=0"),
    ("knn", {"std": (0.2, 0.0, 0.2)}, "std=0.0"),
    ("knn", {"mean": (0.5, 0.5)}, "mean=(0.5, 0.5)"),
    ("linear", {"epochs": 0}, "epochs=0"),
    ("linear", {"batch_size": 0}, "batch_size=0"),
    ("linear", {"lr": 0}, "lr=0"),
    ("linear", {"num_classes": 3}, "num_classes=3"),            # labels go up to 3
    ("linear", {"autocast_dtype": torch.int8}, "autocast_dtype=torch.int8"),
    ("finetune", {"label_fraction": 0.0}, "label_fraction=0.0"),
    ("finetune", {"label_fraction": 1.5}, "label_fraction=1.5"),
    ("finetune", {"label_fraction": 0.001}, "label_fraction=0.001"),  # a single labelled example
    ("finetune", {"seed": -1}, "seed=-1"),
    ("finetune", {"augment": "flip"}, "augment='flip'"),
])
def test_bad_arguments_raise_config_error_before_any_compute(colour_data, protocol, overrides, named):
    encoder = CountingEncoder()
    data = colour_data
    if protocol == "finetune" and overrides.get("label_fraction") == 0.001:
        data = (colour_data[0][:2], torch.tensor([0, 0]), *colour_data[2:])
    with pytest.raises(ConfigError, match=named.replace("(", "\\(").replace(")", "\\)").replace(".", "\\.")):
        _call(protocol, encoder, data, **overrides)
    assert encoder.calls == 0


@pytest.mark.parametrize("protocol", ["knn", "linear", "finetune"])
def test_mismatched_or_malformed_inputs_raise_config_error(colour_data, protocol):
    train_images, train_labels, test_images, test_labels = colour_data
    encoder = CountingEncoder()
    with pytest.raises(ConfigError, match="train_labels has 95 entries but train_images has 96 rows"):
        _call(protocol, encoder, (train_images, train_labels[:-1], test_images, test_labels))
    with pytest.raises(ConfigError, match="test_images must be a uint8 tensor"):
        _call(protocol, encoder, (train_images, train_labels, test_images.float(), test_labels))
    with pytest.raises(ConfigError, match="test_labels must be a 1-D integer tensor"):
        _call(protocol, encoder, (train_images, train_labels, test_images, test_labels.float()))
    assert encoder.calls == 0


def test_knn_classify_checks_its_arguments():
    train, labels, test = torch.randn(10, 4), torch.randint(0, 2, (10,)), torch.randn(3, 4)
    with pytest.raises(ConfigError, match="k=0"):
        knn_classify(train, labels, test, k=0, num_classes=2)
    with pytest.raises(ConfigError, match="D=4 but test_features have D=5"):
        knn_classify(train, labels, torch.randn(3, 5), num_classes=2)
    with pytest.raises(ConfigError, match="train_labels has 9 entries"):
        knn_classify(train, labels[:9], test, num_classes=2)


def test_reused_features_are_never_those_of_an_encoder_freed_meanwhile():
    """Inside reuse_features(), features are keyed by the encoder's id: the block keeps every encoder it saw
    alive, so a new encoder can never take a freed one's id (and its features); after the block they go."""
    import gc
    import weakref

    from simclr_core.evaluate.features import extract_features, reuse_features

    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    stats = dict(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    with reuse_features():
        seen, outputs = [], []
        for seed in range(4):
            torch.manual_seed(seed)
            encoder = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                                          torch.nn.Flatten())
            outputs.append(extract_features(encoder, images, **stats))
            seen.append(weakref.ref(encoder))
            del encoder
            gc.collect()
        assert all(ref() is not None for ref in seen)                    # no id can be reused meanwhile
        assert all(not torch.equal(outputs[i], outputs[j]) for i in range(4) for j in range(i))
    gc.collect()
    assert all(ref() is None for ref in seen)
