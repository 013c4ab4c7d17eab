"""The transfer protocol (Table 8): mean per-class accuracy against a float64 textbook loop, linear transfer on
features that encode the label (100 %, encoder bit-identical), fine-tuning of a copy, the split limits, the config
checks, and a missing transfer dataset stopping train() before any data is read or any step is run."""
from __future__ import annotations

import re

import datasets
import numpy as np
import pytest
import torch
from torch import nn

from simclr_core import train as train_module
from simclr_core.config import RunConfig
from simclr_core.data.locate import DataNotFoundError
from simclr_core.evaluate.accuracy import mean_per_class_accuracy, topk_accuracy
from simclr_core.evaluate.finetune import finetune_eval
from simclr_core.evaluate.frozen import changed_tensors, snapshot_state
from simclr_core.evaluate.transfer import load_transfer_split, require_transfer_data, run_transfer, transfer_eval
from simclr_core.train import train
from simclr_core.validation import ConfigError

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


# ---- mean per-class accuracy -------------------------------------------------------------------------------
def textbook_mean_per_class(scores: np.ndarray, labels: np.ndarray) -> float:
    """For each class that occurs in `labels`: hits / occurrences, in float64; their plain mean, in percent."""
    predicted = [int(np.argmax(row)) for row in scores]
    rates = []
    for c in sorted(set(labels.tolist())):
        rows = [i for i, y in enumerate(labels) if y == c]
        rates.append(sum(predicted[i] == c for i in rows) / len(rows))
    return 100.0 * float(np.mean(np.asarray(rates, dtype=np.float64)))


def test_mean_per_class_accuracy_equals_a_float64_textbook_loop_on_an_unbalanced_example():
    # 4 classes scored; class 3 never occurs. Class 0: 3 of 4 right, class 1: 0 of 1, class 2: 1 of 2.
    labels = torch.tensor([0, 0, 0, 0, 1, 2, 2])
    predicted = torch.tensor([0, 0, 0, 3, 2, 2, 1])
    scores = torch.nn.functional.one_hot(predicted, 4).float() + 0.01 * torch.arange(4.0)
    expected = 100.0 * (3 / 4 + 0 / 1 + 1 / 2) / 3
    assert textbook_mean_per_class(scores.numpy(), labels.numpy()) == pytest.approx(expected, abs=1e-12)
    assert mean_per_class_accuracy(scores, labels) == pytest.approx(expected, abs=1e-9)
    # plain top-1 weighs examples, not classes: 4 of 7 here
    assert topk_accuracy(scores, labels, ks=(1,))[0] == pytest.approx(100.0 * 4 / 7)


def test_mean_per_class_accuracy_on_random_scores_matches_the_textbook_loop():
    g = torch.Generator().manual_seed(0)
    scores, labels = torch.randn(300, 7, generator=g), torch.randint(0, 6, (300,), generator=g)
    assert mean_per_class_accuracy(scores, labels) == pytest.approx(
        textbook_mean_per_class(scores.double().numpy(), labels.numpy()), abs=1e-9)


# ---- the protocol on tensors ----------------------------------------------------------------------------------
def class_images(per_class: int, seed: int, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose class c has channel c at 255 and the others near 0: their channel means encode the label."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(per_class)
    images = torch.randint(0, 20, (labels.numel(), 3, 8, 8), generator=g)
    images[torch.arange(labels.numel()), labels] = 255
    return images.to(torch.uint8), labels


def label_encoder() -> nn.Sequential:
    """BatchNorm (with running statistics to keep) -> global average pool: h = the (normalised) channel means."""
    torch.manual_seed(0)
    return nn.Sequential(nn.BatchNorm2d(3), nn.AdaptiveAvgPool2d(1), nn.Flatten())


@pytest.fixture(scope="module")
def label_data():
    return (*class_images(per_class=20, seed=1), *class_images(per_class=7, seed=2))


def test_linear_transfer_on_features_that_encode_the_label_is_perfect_and_leaves_the_encoder_untouched(label_data):
    encoder = label_encoder().train()
    before = snapshot_state(encoder)
    metrics = transfer_eval(encoder, *label_data, num_classes=3, mean=MEAN, std=STD, protocols=("linear",),
                            linear=dict(epochs=60, batch_size=16, lr=0.5))
    assert metrics == {"transfer_linear_top1": 100.0, "transfer_linear_mean_per_class_acc": 100.0}
    assert changed_tensors(encoder, before) == []
    assert encoder.training and encoder[0].training          # its own train/eval flags are given back


def test_finetuning_transfer_trains_a_copy_and_reports_both_kinds_of_number(label_data):
    encoder = label_encoder()
    before = snapshot_state(encoder)
    metrics = transfer_eval(encoder, *label_data, num_classes=3, mean=MEAN, std=STD, protocols=("finetune",),
                            finetune=dict(epochs=2, batch_size=16, lr=0.05))
    assert set(metrics) == {"transfer_finetune_top1", "transfer_finetune_mean_per_class_acc"}
    assert all(0.0 <= v <= 100.0 for v in metrics.values())
    assert changed_tensors(encoder, before) == []


def conv_encoder(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten())


def test_random_init_fine_tunes_the_fresh_encoder_alike_and_leaves_the_pretrained_numbers_as_they_were(label_data):
    pretrained, fresh = conv_encoder(0), conv_encoder(1)
    before = {name: snapshot_state(e) for name, e in (("pretrained", pretrained), ("fresh", fresh))}
    finetune = dict(epochs=2, batch_size=16, lr=0.05)
    both = transfer_eval(pretrained, *label_data, num_classes=3, mean=MEAN, std=STD, finetune=finetune, scratch=fresh,
                         linear=dict(epochs=2, batch_size=16, lr=0.1))
    alone = transfer_eval(pretrained, *label_data, num_classes=3, mean=MEAN, std=STD, finetune=finetune,
                          linear=dict(epochs=2, batch_size=16, lr=0.1))
    assert {k: v for k, v in both.items() if not k.startswith("transfer_scratch_")} == alone
    by_hand = finetune_eval(fresh, *label_data, mean=MEAN, std=STD, num_classes=3, label_fraction=1.0, seed=0,
                            mean_per_class=True, **finetune)
    assert both["transfer_scratch_top1"] == pytest.approx(by_hand["finetune_top1"], abs=1e-9)
    assert both["transfer_scratch_mean_per_class_acc"] == pytest.approx(by_hand["finetune_mean_per_class_acc"],
                                                                        abs=1e-9)
    assert changed_tensors(pretrained, before["pretrained"]) == [] and changed_tensors(fresh, before["fresh"]) == []
    linear_only = transfer_eval(pretrained, *label_data, num_classes=3, mean=MEAN, std=STD, protocols=("linear",),
                                scratch=fresh, linear=dict(epochs=2, batch_size=16, lr=0.1))
    assert not any(k.startswith("transfer_scratch_") for k in linear_only)


def test_random_init_needs_the_fine_tuning_protocol_and_doubles_its_planned_cost():
    from registry.estimate import estimate
    cfg = RunConfig().with_overrides({"eval.protocols": ("transfer",), "eval.transfer_dataset": "cifar10"})
    with pytest.raises(ConfigError, match=r"eval.transfer_scratch=True .* eval.transfer_protocols=\('linear',\) "
                                          r"leaves out: add 'finetune'"):
        cfg.with_overrides({"eval.transfer_scratch": True, "eval.transfer_protocols": ("linear",)}).validate()
    bare = estimate(cfg.with_overrides({"eval.transfer_protocols": ("linear",)}), "cpu").hours
    once, twice = (estimate(cfg.with_overrides({"eval.transfer_scratch": on}), "cpu").hours - bare
                   for on in (False, True))
    assert twice == pytest.approx(2 * once, rel=1e-9) and once > 0


def test_transfer_protocols_are_checked_before_compute(label_data):
    with pytest.raises(ConfigError, match="eval.transfer_protocols='knn' is not valid; choose one of: 'linear', "
                                          "'finetune'"):
        transfer_eval(label_encoder(), *label_data, num_classes=3, mean=MEAN, std=STD, protocols=("knn",))


# ---- config -----------------------------------------------------------------------------------------------------
def test_voc2007_and_unknown_datasets_are_refused_naming_why_and_the_choices():
    with pytest.raises(ConfigError, match=r"eval.transfer_dataset='voc2007' is not supported: .*multi-label.*"
                                          r"11-point mAP.*choose one of: .*'food101'"):
        RunConfig().with_overrides({"eval.transfer_dataset": "voc2007"}).validate()
    with pytest.raises(ConfigError, match="eval.transfer_dataset='mnist' is not valid; choose one of: .*'cifar100'"):
        RunConfig().with_overrides({"eval.transfer_dataset": "mnist"}).validate()
    with pytest.raises(ConfigError, match="eval.transfer_protocols=.* must name at least one of 'linear', "
                                          "'finetune'"):
        RunConfig().with_overrides({"eval.transfer_protocols": ()}).validate()
    with pytest.raises(ConfigError, match="more than once"):
        RunConfig().with_overrides({"eval.transfer_protocols": ("linear", "linear")}).validate()


def test_transfer_datasets_cannot_be_pretrained_on():
    with pytest.raises(ConfigError, match="data.dataset='food101' is not valid"):
        RunConfig().with_overrides({"data.dataset": "food101"}).validate()


# ---- data -------------------------------------------------------------------------------------------------------
def subset_transfer(**overrides) -> RunConfig:
    """Transfer to the embedded CIFAR-10 subset (5,000 train / 1,000 test images, no network needed)."""
    return RunConfig().with_overrides({"eval.transfer_dataset": "cifar10_subset", **overrides})


def test_transfer_splits_are_limited_like_the_pretraining_data_and_capped_at_their_size():
    limited = subset_transfer(**{"data.train_limit": 60, "data.test_limit": 20000})
    train_set = load_transfer_split(limited, "train", 16)
    test_set = load_transfer_split(limited, "test", 16)
    assert train_set.images.shape == (60, 3, 16, 16)
    assert np.bincount(train_set.labels.numpy()).tolist() == [6] * 10      # class-balanced, as data.train_limit
    assert test_set.images.shape == (1000, 3, 16, 16)                       # the limit exceeds the split: all


def test_run_transfer_reads_the_transfer_dataset_at_the_runs_image_size():
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                            nn.Flatten())
    cfg = subset_transfer(**{"data.train_limit": 40, "data.test_limit": 20, "eval.linear_epochs": 2,
                             "eval.finetune_epochs": 1, "eval.finetune_batch_size": 16})
    before = snapshot_state(encoder)
    metrics = run_transfer(encoder, cfg, image_size=12, mean=MEAN, std=STD)
    assert metrics["transfer_train_images"] == 40 and metrics["transfer_test_images"] == 20
    assert "cifar10_subset" in metrics["transfer_source"]
    for name in ("transfer_linear_top1", "transfer_linear_mean_per_class_acc", "transfer_finetune_top1",
                 "transfer_finetune_mean_per_class_acc"):
        assert 0.0 <= metrics[name] <= 100.0, name
    assert changed_tensors(encoder, before) == []


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """An empty $SIMCLR_DATA_DIR, HF offline with an empty HF cache: no dataset but the embedded subset exists."""
    monkeypatch.setenv("SIMCLR_DATA_DIR", str(tmp_path / "root"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")
    return tmp_path / "root"


@pytest.mark.parametrize("dataset, hub", [("food101", "ethz/food101"), ("birdsnap", None)])
def test_a_missing_transfer_dataset_stops_train_before_any_data_is_read(dataset, hub, no_data, tmp_path,
                                                                       monkeypatch):
    def no_feed(*args, **kwargs):
        raise AssertionError("train() opened its data although the transfer dataset is missing")

    monkeypatch.setattr(train_module, "open_feed", no_feed)
    cfg = RunConfig().with_overrides({"eval.protocols": ("knn", "transfer"), "eval.transfer_dataset": dataset,
                                      "max_steps": 1})
    with pytest.raises(DataNotFoundError) as error:
        train(cfg, tmp_path / "run")
    first, *rest = str(error.value).splitlines()
    for needle in (f"eval.transfer_dataset={dataset!r} is not available", str(no_data / dataset),
                   "eval.transfer_data_dir not set", "eval.transfer_data_dir=DIR", "SIMCLR_DATA_DIR=ROOT",
                   f"ROOT/{dataset}/train.parquet"):
        assert needle in first, needle
    assert "data.data_dir" not in str(error.value)        # the pretraining data's key would mislead here
    assert (hub in "\n".join(rest)) if hub else re.search("has no Hub id", "\n".join(rest))
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_transfer_files_whose_names_name_no_split_are_named_in_the_first_line_of_the_error(no_data, tmp_path):
    """A download renamed training.parquet / testing.parquet: the error named the split it wanted, not the files it
    saw, so the user could not tell a wrong name from a wrong folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from image_rows import png_rows

    folder = no_data / "oxford_pets"
    folder.mkdir(parents=True)
    for split in ("training", "testing"):
        pq.write_table(pa.table({"image": png_rows(2, 0), "label": [0, 1]}), folder / f"{split}.parquet")
    cfg = RunConfig().with_overrides({"eval.protocols": ("transfer",), "eval.transfer_dataset": "oxford_pets"})
    with pytest.raises(DataNotFoundError) as error:
        require_transfer_data(cfg)
    first = str(error.value).splitlines()[0]
    assert f"{folder} has no train .parquet/.arrow/.tar files (it holds testing.parquet, training.parquet" in first
    assert "train.parquet" in first and "eval.transfer_data_dir=DIR" in first


def test_a_run_without_the_transfer_protocol_does_not_look_for_its_data(no_data, tmp_path, monkeypatch):
    class Reached(Exception):
        pass

    def feed_reached(*args, **kwargs):
        raise Reached

    monkeypatch.setattr(train_module, "open_feed", feed_reached)
    with pytest.raises(Reached):
        train(RunConfig().with_overrides({"eval.transfer_dataset": "food101", "max_steps": 1}), tmp_path / "run")


# ---- a photo collection streams ---------------------------------------------------------------------------------
def photo_folder(root, per_class: int = 6, classes: int = 3):
    """train/ and test/ class folders of JPEGs of varied sizes whose colour encodes the class (channel c bright)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in range(classes):
            (root / split / f"class{c}").mkdir(parents=True)
            for i in range(per_class):
                h, w = int(rng.integers(20, 60)), int(rng.integers(20, 60))
                pixels = rng.integers(0, 40, (h, w, 3), dtype=np.uint8)
                pixels[..., c] = 230
                Image.fromarray(pixels).save(root / split / f"class{c}" / f"{i}.jpg", quality=95)
    return root


def folder_transfer(root, **overrides) -> RunConfig:
    return RunConfig().with_overrides({"eval.transfer_dataset": "imagefolder", "eval.transfer_data_dir": str(root),
                                       "eval.linear_epochs": 30, "eval.finetune_epochs": 1,
                                       "eval.finetune_batch_size": 8, **overrides})


def test_a_photo_collection_streams_the_rows_and_squares_the_held_copy_has(tmp_path):
    root = photo_folder(tmp_path / "photos")
    limited = {"data.train_limit": 12, "data.test_limit": 9}
    streamed = load_transfer_split(folder_transfer(root, **limited), "train", 16)
    held = load_transfer_split(folder_transfer(root, **limited, **{"eval.transfer_loader": "resident"}), "train", 16)
    assert (streamed.loader, held.loader) == ("stream", "resident") and len(streamed) == len(held) == 12
    assert torch.equal(streamed.labels, held.labels) and np.bincount(streamed.labels.numpy()).tolist() == [4, 4, 4]
    squares = torch.cat(list(streamed.images.batches(5)))
    assert torch.equal(squares, held.images)          # the same images, resized and centre-cropped alike


def test_streamed_transfer_scores_the_frozen_features_as_the_held_copy_does(tmp_path):
    root = photo_folder(tmp_path / "photos")
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                            nn.Flatten())
    before = snapshot_state(encoder)
    runs = {loader: run_transfer(encoder, folder_transfer(root, **{"eval.transfer_loader": loader}), image_size=16,
                                 mean=MEAN, std=STD) for loader in ("auto", "resident")}
    assert runs["auto"]["transfer_loader"] == "stream" and runs["auto"]["transfer_unreadable_images"] == 0
    assert runs["resident"]["transfer_loader"] == "resident" and runs["resident"]["transfer_unreadable_images"] == 0
    for name in ("transfer_linear_top1", "transfer_linear_mean_per_class_acc"):
        assert runs["auto"][name] == pytest.approx(runs["resident"][name], abs=1e-6), name
    assert runs["auto"]["transfer_linear_top1"] == 100.0          # the colour gives the class away
    assert 0.0 <= runs["auto"]["transfer_finetune_top1"] <= 100.0  # its crops come from the originals: not compared
    assert changed_tensors(encoder, before) == []


def test_streamed_transfer_training_images_smaller_than_the_view_are_counted_in_the_key_their_warning_names(tmp_path):
    """Fine-tuning upscales the crops of such images; the warning of the first one promised a count that final.json
    did not hold."""
    from PIL import Image

    root = photo_folder(tmp_path / "photos")
    side = 32
    small = sum(min(Image.open(path).size) < side for path in (root / "train").rglob("*.jpg"))
    assert 0 < small < 18                                  # the folder has both kinds (sizes 20-59 px)
    encoder = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    cfg = folder_transfer(root, **{"eval.transfer_protocols": ("finetune",)})
    with pytest.warns(UserWarning, match=r"smaller than the 32 px views: .* final\.json counts such images "
                                         r"\(transfer_images_smaller_than_view\)") as caught:
        metrics = run_transfer(encoder, cfg, image_size=side, mean=MEAN, std=STD)
    assert len([w for w in caught if "smaller than the" in str(w.message)]) == 1
    assert metrics["transfer_loader"] == "stream" and metrics["transfer_images_smaller_than_view"] == small


@pytest.mark.parametrize("loader", ["stream", "resident"])
def test_transfer_test_images_of_a_class_without_training_images_are_one_warning(tmp_path, loader):
    """As for the run's own splits (feed.py): they cap the transfer accuracies, which said nothing of it."""
    import shutil

    root = photo_folder(tmp_path / "photos")
    shutil.rmtree(root / "train" / "class2")
    encoder = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    cfg = folder_transfer(root, **{"eval.transfer_loader": loader, "eval.transfer_protocols": ("linear",),
                                   "eval.linear_epochs": 1})
    with pytest.warns(UserWarning, match=r"^6 of the 18 test images \(imagefolder \S+photos split 'test'\) have a "
                                         r"label that no training image has \(2; an image folder's labels.*\): "
                                         r"the transfer's linear evaluation cannot classify them"):
        metrics = run_transfer(encoder, cfg, image_size=16, mean=MEAN, std=STD)
    assert 0 <= metrics["transfer_linear_top1"] <= 100 and metrics["transfer_test_images"] == 18


def test_a_transfer_folder_without_images_stops_the_run_before_pretraining(tmp_path, monkeypatch):
    root = photo_folder(tmp_path / "photos")
    for image in (root / "test").rglob("*.jpg"):
        image.unlink()

    def no_feed(*args, **kwargs):
        raise AssertionError("train() opened its data although the transfer data is bad")
    monkeypatch.setattr(train_module, "open_feed", no_feed)
    cfg = folder_transfer(root, **{"eval.protocols": ("transfer",), "max_steps": 1})
    with pytest.raises(ConfigError, match=r"holds no images"):
        train(cfg, tmp_path / "run")
    with pytest.raises(ConfigError, match=r"eval.transfer_loader='disk'.*'auto', 'resident', 'stream'"):
        folder_transfer(root, **{"eval.transfer_loader": "disk"}).validate()


def test_a_supervised_run_transfers_its_network_and_a_random_init_one_table8_baselines(tmp_path):
    """Table 8's baselines end to end: a supervised run (train()), then the transfer protocol with eval.transfer_scratch
    on the embedded subset; final.json holds the pretrained network's numbers and the random initialisation's."""
    cfg = subset_transfer(**{
        "method": "supervised", "data.dataset": "cifar10_subset", "data.train_limit": 64, "data.test_limit": 32,
        "encoder.width": 0.25, "batch_size": 16, "max_steps": 2, "eval.protocols": ("transfer",),
        "eval.transfer_scratch": True, "eval.linear_epochs": 1, "eval.finetune_epochs": 1,
        "eval.finetune_batch_size": 16}).validate()
    final = train(cfg, tmp_path / "run")
    for prefix in ("transfer_linear", "transfer_finetune", "transfer_scratch"):
        for kind in ("top1", "mean_per_class_acc"):
            assert 0.0 <= final[f"{prefix}_{kind}"] <= 100.0, (prefix, kind)
    assert final["transfer_train_images"] == 64 and final["transfer_test_images"] == 32
