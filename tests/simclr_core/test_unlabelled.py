"""Images without labels (parquet or arrow without a label column, a folder without class folders, tar shards
without .cls members): pretrained on, never classified."""
from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from image_rows import png_rows, tar_shard
from simclr_core.config import RunConfig
from simclr_core.train import check_inputs, needs_test_split, train
from simclr_core.validation import ConfigError


pytestmark = pytest.mark.usefixtures("isolated_data_caches")




def _unlabelled(root: Path, layout: str = "parquet", n: int = 16) -> Path:
    """A train split of `n` images and no label column (and no test split)."""
    root.mkdir(parents=True, exist_ok=True)
    if layout == "parquet":
        pq.write_table(pa.table({"image": png_rows(n, 0)}), root / "train.parquet")
    else:
        features = datasets.Features({"image": datasets.Image()})
        datasets.Dataset.from_dict({"image": png_rows(n, 0)}, features=features).save_to_disk(str(root / "train"))
    return root


def _config(root: Path, loader: str, **overrides) -> RunConfig:
    return RunConfig().with_overrides({
        "data.dataset": "parquet", "data.data_dir": str(root), "data.loader": loader, "data.image_size": 16,
        "data.train_limit": None, "encoder.width": 0.25, "batch_size": 8, "max_steps": 2, "optim.warmup_epochs": 0,
        "eval.protocols": None, "eval.knn_every_epochs": 0, "log_every_steps": 1, **overrides})


@pytest.mark.parametrize("loader", ["resident", "stream"])
@pytest.mark.parametrize("layout", ["parquet", "disk"])
def test_a_split_without_labels_is_pretrained_on(tmp_path, loader, layout):
    """A parquet file of images alone was "has none of the label columns", whatever the run did with labels:
    self-supervised pretraining reads none."""
    root = _unlabelled(tmp_path / "data", layout)
    cfg = _config(root, loader)
    check_inputs(cfg)
    metrics = train(cfg, tmp_path / "run")
    assert metrics["data_loader"] == loader and metrics["steps"] == 2
    assert json.loads((tmp_path / "run" / "final.json").read_text())["unlabelled"] is True
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [row["loss"] for row in rows if "loss" in row]
    assert len(losses) == 2 and np.isfinite(losses).all()


@pytest.mark.parametrize("loader", ["resident", "stream"])
@pytest.mark.parametrize("overrides, named", [
    ({"eval.knn_every_epochs": 1}, r"the kNN monitor \(eval.knn_every_epochs\)"),
    ({"method": "supervised"}, r"supervised training \(method=supervised\)"),
])
def test_classifying_images_without_labels_is_one_error_before_the_run(tmp_path, loader, overrides, named):
    root = _unlabelled(tmp_path / "data")
    pq.write_table(pa.table({"image": png_rows(4, 1)}), root / "test.parquet")
    with pytest.raises(ConfigError, match=rf"^the training split of 'parquet' has no labels \(none of the label "
                                          rf"columns label, fine_label, labels, cls\), and {named} would classify its "
                                          r"images. Give them a label column \(or name the one they have: "
                                          r"data.label_column=NAME\), or only pretrain: eval.protocols=none "
                                          r"eval.knn_every_epochs=0"):
        check_inputs(_config(root, loader, **overrides))
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.npy"))   # nothing decoded


def test_transfer_alone_reads_no_test_split_of_the_run_and_the_transform_probe_one():
    """Transfer evaluation reads datasets of its own: an unlabelled dataset without a test split can be pretrained on
    and transferred. The transformation probe (Table 3) reads the run's images, not their labels."""
    base = RunConfig().with_overrides({"eval.knn_every_epochs": 0})
    assert not needs_test_split(base.with_overrides({"eval.protocols": "transfer"}))
    assert needs_test_split(base.with_overrides({"eval.protocols": "transform_probe"}))
    assert needs_test_split(base.with_overrides({"eval.protocols": "transfer", "eval.knn_every_epochs": 1}))


def test_one_shard_without_the_label_column_of_the_others_is_one_error_naming_it(tmp_path):
    from simclr_core.config import DataConfig
    from simclr_core.data.encoded import open_encoded

    root = tmp_path / "data"
    root.mkdir()
    pq.write_table(pa.table({"image": png_rows(4, 0), "label": [0, 1, 0, 1]}), root / "train-00000-of-00002.parquet")
    pq.write_table(pa.table({"image": png_rows(4, 1)}), root / "train-00001-of-00002.parquet")
    with pytest.raises(ConfigError, match=r"train-00001-of-00002.parquet has none of the label columns"):
        open_encoded(DataConfig(dataset="parquet", data_dir=str(root)), "train")


@pytest.mark.parametrize("loader", ["resident", "stream"])
def test_a_transfer_dataset_without_labels_is_one_error_before_pretraining(tmp_path, loader):
    """On the resident path it was not checked: pretraining ran, then transfer evaluation failed."""
    from simclr_core.evaluate.transfer import require_transfer_data

    root = _unlabelled(tmp_path / "transfer")
    pq.write_table(pa.table({"image": png_rows(4, 1)}), root / "test.parquet")
    cfg = RunConfig().with_overrides({"eval.protocols": "transfer", "eval.transfer_dataset": "parquet",
                                      "eval.transfer_data_dir": str(root), "eval.transfer_loader": loader})
    with pytest.raises(ConfigError, match=r"^the transfer dataset 'parquet' \(\S+train.parquet \(parquet\)\) has no "
                                          r"labels \(none of the label columns label, fine_label, labels, cls\), and transfer "
                                          r"evaluation classifies its images. Give them a label column"):
        require_transfer_data(cfg)


def _loose_folder(root: Path, splits=("train",), n: int = 16) -> Path:
    for split in splits:
        (root / split).mkdir(parents=True)
        for i, image in enumerate(png_rows(n, len(split))):
            (root / split / f"{i:03d}.png").write_bytes(image["bytes"])
    return root


@pytest.mark.parametrize("loader", ["resident", "stream"])
def test_a_folder_of_images_without_class_folders_is_pretrained_on(tmp_path, loader):
    """Images directly in train/ were "holds no images in class folders"."""
    root = _loose_folder(tmp_path / "photos")
    cfg = _config(root, loader).with_overrides({"data.dataset": "imagefolder"})
    check_inputs(cfg)
    metrics = train(cfg, tmp_path / "run")
    assert metrics["steps"] == 2 and metrics["unlabelled"] is True and metrics["data_loader"] == loader
    with pytest.raises(ConfigError, match=r"'imagefolder' has no labels \(no class folders\), and the kNN monitor "
                                          r"\(eval.knn_every_epochs\) would classify its images. Put each class's "
                                          r"images in a folder of its own \(<split>/<class>/<image>\), or only "
                                          r"pretrain"):
        check_inputs(cfg.with_overrides({"eval.knn_every_epochs": 1}))


@pytest.mark.parametrize("loader", ["resident", "stream"])
def test_images_beside_class_folders_are_left_out_with_a_warning_naming_one(tmp_path, loader):
    from simclr_core.config import DataConfig
    from simclr_core.data.feed import open_feed

    root = _loose_folder(tmp_path / "photos", n=2)           # train/000.png, train/001.png
    for cls in ("cat", "dog"):
        (root / "train" / cls).mkdir()
        for i, image in enumerate(png_rows(3, 7)):
            (root / "train" / cls / f"{i}.png").write_bytes(image["bytes"])
    cfg = DataConfig(dataset="imagefolder", data_dir=str(root), loader=loader, train_limit=None, image_size=16)
    with pytest.warns(UserWarning, match=r"^2 images lie directly in \S+/train \(e.g. \S+/train/000.png\), in no "
                                         r"class folder: they are left out"):
        feed = open_feed(cfg, need_test=False)
    assert feed.num_train == 6 and feed.train_labels.tolist() == [0, 0, 0, 1, 1, 1]


def _unlabelled_tar(root: Path, n: int = 16, shards: int = 2) -> Path:
    """WebDataset shards of `n` PNG samples and no .cls member."""
    rows = png_rows(n, 3)
    for s in range(shards):
        tar_shard(root / f"train-{s:06d}.tar", {f"{i:04d}.png": rows[i]["bytes"] for i in range(s, n, shards)})
    return root


def test_tar_shards_without_cls_members_are_pretrained_on(tmp_path):
    """They were "sample '0000' has an image but no 0000.cls label"."""
    from simclr_core.config import DataConfig
    from simclr_core.data.encoded import open_encoded

    root = _unlabelled_tar(tmp_path / "shards")
    split = open_encoded(DataConfig(dataset="parquet", data_dir=str(root)), "train")
    assert len(split) == 16 and split.num_classes == 0 and split.labels.tolist() == [0] * 16
    assert split.read([5]) == [png_rows(16, 3)[int(split.members[5][:4])]["bytes"]]
    cfg = _config(root, "stream")
    check_inputs(cfg)
    metrics = train(cfg, tmp_path / "run")
    assert metrics["steps"] == 2 and metrics["unlabelled"] is True and metrics["data_loader"] == "stream"
    with pytest.raises(ConfigError, match=r"^the training split of 'parquet' has no labels \(no .cls members\), and "
                                          r"linear would classify its images. Give "
                                          r"each sample its class index in a .cls member \(key.cls beside key.jpg\), "
                                          r"or only pretrain"):
        check_inputs(cfg.with_overrides({"eval.protocols": "linear"}))


@pytest.mark.parametrize("loader", ["resident", "stream"])
def test_a_test_split_without_labels_is_one_error_where_the_run_scores_on_it(tmp_path, loader):
    """Its labels read as the placeholder 0: the kNN monitor and linear evaluation would have scored predictions
    against them, a silently wrong accuracy. The transformation probe reads no labels and may use it."""
    root = tmp_path / "data"
    root.mkdir()
    pq.write_table(pa.table({"image": png_rows(16, 0), "label": [0, 1] * 8}), root / "train.parquet")
    pq.write_table(pa.table({"image": png_rows(8, 1)}), root / "test.parquet")
    message = (r"^the test split of 'parquet'( \(\S+test.parquet \(parquet\)\))? has no labels \(none of the label "
               r"columns label, fine_label, labels, cls\), and linear, the kNN monitor \(eval.knn_every_epochs\) would "
               r"score predictions against them. Give them a label column")
    cfg = _config(root, loader, **{"eval.protocols": "linear", "eval.knn_every_epochs": 1})
    with pytest.raises(ConfigError, match=message):
        check_inputs(cfg)
    with pytest.raises(ConfigError, match=message):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoint.pt").exists() and not (tmp_path / "run" / "metrics.jsonl").exists()
    check_inputs(_config(root, loader, **{"eval.protocols": "transform_probe"}))
