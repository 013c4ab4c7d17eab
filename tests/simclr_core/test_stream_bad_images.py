"""Unreadable images on the streamed path's evaluations (data/stream.py's EvalImages and LabelledOriginals): left out
of an evaluation pass with their labels, so that an accuracy is that of the split without them; replaced in a
fine-tuning batch by another image that brings its own label. Each class's images are one solid colour, so a label
that drifted off its image shows."""
from __future__ import annotations

import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from simclr_core.config import DataConfig
from simclr_core.data.bad_images import MIN_BAD_FOR_VERDICT
from simclr_core.data.encoded import open_encoded
from simclr_core.data.stream import EvalImages
from simclr_core.evaluate import finetune as finetune_module
from simclr_core.evaluate.classifier import classifier_eval
from simclr_core.evaluate.features import channel_stats, normalize
from simclr_core.evaluate.finetune import finetune_eval
from simclr_core.evaluate.knn import knn_eval
from simclr_core.evaluate.linear import linear_eval
from simclr_core.validation import ConfigError

from test_resident_bad_images import colour_labels, jpeg, write_parquet

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
SIDE = 12


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))


def photos(labels: list[int], bad: set[int]) -> list[tuple[bytes, int]]:
    """(bytes, label) of one solid-colour JPEG per label; those at the positions in `bad` cut short."""
    out = []
    for i, label in enumerate(labels):
        data = jpeg(label, SIDE)
        out.append((data[:len(data) // 3] if i in bad else data, label))
    return out


def stream(root: Path, images, split: str = "train") -> EvalImages:
    write_parquet(root, images, split)
    return EvalImages(open_encoded(DataConfig(dataset="parquet", data_dir=str(root)), split), SIDE, 1.0,
                      torch.device("cpu"), threads=1)


def streams(tmp_path: Path, labels: list[int], bad: set[int], split: str = "test") -> tuple[EvalImages, EvalImages]:
    """A split with the images at `bad` cut short, and the same split written without them."""
    images = photos(labels, bad)
    return (stream(tmp_path / "damaged", images, split),
            stream(tmp_path / "clean", [image for i, image in enumerate(images) if i not in bad], split))


def cycling(count: int) -> list[int]:
    return [i % 3 for i in range(count)]


def test_an_evaluation_pass_leaves_an_unreadable_image_out_with_its_label(tmp_path):
    images = stream(tmp_path / "data", photos(cycling(12), bad={8}))
    rows: list[int] = []
    with pytest.warns(UserWarning, match=r"row 8 of \S+train\.parquet .*left out of the evaluation, with its label"):
        squares = torch.cat(list(images.batches(4, rows)))
    assert rows == [i for i in range(12) if i != 8] and len(squares) == 11
    assert colour_labels(squares) == images.labels[rows].tolist()          # every image under its own label
    assert images.bad.bad == 1 and images.bad.seen == 12


def test_an_unreadable_image_alone_in_its_batch_is_left_out_not_an_error(tmp_path):
    images = stream(tmp_path / "data", photos(cycling(9), bad={8}))        # the last batch: that image alone
    rows: list[int] = []
    with pytest.warns(UserWarning, match="left out of the evaluation"):
        squares = torch.cat(list(images.batches(4, rows)))
    assert rows == list(range(8)) and colour_labels(squares) == images.labels[:8].tolist()


def test_too_many_unreadable_images_stop_an_evaluation_pass_naming_them(tmp_path):
    count = 2 * MIN_BAD_FOR_VERDICT
    images = stream(tmp_path / "data", photos(cycling(count), bad=set(range(1, count, 2))))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ConfigError, match=rf"{MIN_BAD_FOR_VERDICT} of the {count} images read so far could not be "
                                              r"decoded \(more than 1%\); the first: row 1 of "):
            list(images.batches(count))
    said = [str(w.message) for w in caught if "unreadable image" in str(w.message)]
    assert len(said) == MIN_BAD_FOR_VERDICT and all("left out of the evaluation" in m for m in said)


def colour_encoder() -> nn.Module:
    """h = the image's mean colour, normalised: the classes' colours tell them apart."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


@pytest.mark.parametrize("protocol", ["knn", "linear", "supervised"])
def test_an_accuracy_over_a_streamed_split_is_that_of_the_split_without_its_unreadable_images(tmp_path, protocol):
    """Row 5 of the training split and row 8 of the test split (class 2) are cut short: a stand-in from their
    batch of 4 would be of another class, scored under theirs."""
    train, clean_train = streams(tmp_path / "train", cycling(24), bad={5}, split="train")
    test, clean_test = streams(tmp_path / "test", cycling(21), bad={8})
    common = dict(mean=MEAN, std=STD, num_classes=3)

    def scored(train_images: EvalImages, test_images: EvalImages) -> dict[str, float]:
        data = (train_images, train_images.labels, test_images, test_images.labels)
        if protocol == "knn":
            return knn_eval(colour_encoder(), *data, k=5, batch_size=4, **common)
        if protocol == "linear":
            return linear_eval(colour_encoder(), *data, epochs=3, batch_size=8, extract_batch_size=4, **common)
        classifier = nn.Linear(3, 3)
        with torch.no_grad():                       # the class of the strongest channel (red, green, blue)
            classifier.weight.copy_(torch.eye(3))
            classifier.bias.zero_()
        return classifier_eval(colour_encoder(), classifier, test_images, test_images.labels, batch_size=4, **common)

    with pytest.warns(UserWarning, match="unreadable image"):
        damaged = scored(train, test)
    assert damaged == scored(clean_train, clean_test)
    assert damaged[f"{protocol}_top1"] == 100.0                            # the colours tell every class apart


def test_fine_tuning_trains_each_streamed_image_under_its_own_label(tmp_path, monkeypatch):
    """The only image of class 1 is cut short: whatever stands in for it is of another class, and must be trained
    under that class. The test split's unreadable image is left out of the accuracy."""
    labels = [1 if i == 5 else 2 * (i % 2) for i in range(12)]
    train = stream(tmp_path / "train", photos(labels, bad={5}))
    test, clean_test = streams(tmp_path / "test", cycling(21), bad={8})
    mean_t, std_t = channel_stats(MEAN, STD, torch.device("cpu"))
    colours, targets = [], []

    def augment(originals, generator):
        batch = torch.stack(originals)
        colours.append(colour_labels(batch))
        return normalize(batch, mean_t, std_t)

    def cross_entropy(logits, target):
        targets.append(target.tolist())
        return nn.functional.cross_entropy(logits, target)

    monkeypatch.setattr(finetune_module, "F", types.SimpleNamespace(cross_entropy=cross_entropy))

    def tuned(test_images: EvalImages) -> dict[str, float]:
        torch.manual_seed(0)
        encoder = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                nn.Flatten())
        return finetune_eval(encoder, train, train.labels, test_images, test_images.labels, mean=MEAN, std=STD,
                             num_classes=3, label_fraction=1.0, subset=torch.arange(12), epochs=2, batch_size=6,
                             lr=0.05, seed=0, augment=augment)

    with pytest.warns(UserWarning, match="unreadable image"):
        damaged = tuned(test)
        assert len(targets) == 4 and targets == colours                   # 2 epochs of 2 batches
        assert 1 not in np.concatenate(targets)                           # its image was never read
        assert damaged == tuned(clean_test)
