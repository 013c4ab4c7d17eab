"""Label columns of class names: ids from the sorted names of all of the dataset's splits, alike on both paths."""
from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from image_rows import png_rows
from simclr_core.config import DataConfig, RunConfig
from simclr_core.data import catalog
from simclr_core.data import load_images
from simclr_core.data.encoded import open_encoded
from simclr_core.data.feed import open_feed
from simclr_core.data.image_paths import image_paths
from simclr_core.validation import ConfigError

# Each split lacks a class the other has: "ant" only in train, "bee" only in test.
TRAIN_NAMES = ["dog", "cat", "ant", "dog", "cat", "dog", "cat", "ant"]
TEST_NAMES = ["cat", "bee", "dog", "cat", "bee", "dog"]
CLASSES = ["ant", "bee", "cat", "dog"]


pytestmark = pytest.mark.usefixtures("isolated_data_caches")




def _write(root: Path, layout: str, names: dict[str, list]) -> Path:
    """Both splits under `root`: parquet files (pyarrow, a plain string column) or `save_to_disk` folders."""
    root.mkdir(parents=True, exist_ok=True)
    for split, labels in names.items():
        images = png_rows(len(labels), seed=len(split))
        if layout == "parquet":
            pq.write_table(pa.table({"image": images, "label": pa.array(labels, pa.string())}),
                           root / f"{split}.parquet")
        else:
            features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")})
            datasets.Dataset.from_dict({"image": images, "label": labels}, features=features) \
                .save_to_disk(str(root / split))
    return root


def _ids(names: list[str]) -> list[int]:
    return [CLASSES.index(name) for name in names]


@pytest.mark.parametrize("layout", ["parquet", "disk"])
def test_class_names_get_the_ids_of_the_sorted_names_of_all_splits_on_both_paths(tmp_path, layout):
    """A label column of names was refused ("labels must be whole-number class ids"); numbering each split's own
    names would give "dog" id 2 in train (ant, cat, dog) and id 2 in test (bee, cat, dog) by chance only."""
    root = _write(tmp_path / "data", layout, {"train": TRAIN_NAMES, "test": TEST_NAMES})
    cfg = DataConfig(dataset="parquet", data_dir=str(root), train_limit=None, test_limit=None, image_size=16)
    for loader in ("resident", "stream"):
        with pytest.warns(UserWarning, match=r"2 of the 6 test images .* have a label that no training image has "
                                             r"\('bee'\)"):
            feed = open_feed(replace(cfg, loader=loader), need_test=True)
        assert feed.num_classes == 4
        assert feed.train_labels.tolist() == _ids(TRAIN_NAMES)
        assert feed.test_labels.tolist() == _ids(TEST_NAMES)
        assert feed.stats()["class_names"] == CLASSES
    again = load_images(replace(cfg, loader="resident"), "test")          # from the decoded cache
    assert again.labels.tolist() == _ids(TEST_NAMES) and again.class_names == tuple(CLASSES)


def test_a_split_cached_with_other_class_names_is_decoded_again_with_the_new_ids(tmp_path):
    """The cached ids of a split labelled by names depend on the other splits' names too: a class added to the test
    split that sorts first shifts every training id."""
    root = _write(tmp_path / "data", "parquet", {"train": TRAIN_NAMES, "test": TEST_NAMES})
    cfg = DataConfig(dataset="parquet", data_dir=str(root), train_limit=None, image_size=16)
    assert load_images(cfg, "train").labels.tolist() == _ids(TRAIN_NAMES)
    _write(root, "parquet", {"test": ["aardvark", *TEST_NAMES[1:]]})
    train = load_images(cfg, "train")
    assert train.num_classes == 5 and train.class_names == ("aardvark", *CLASSES)
    assert train.labels.tolist() == [i + 1 for i in _ids(TRAIN_NAMES)]


def test_a_limited_split_of_names_is_balanced_and_image_paths_name_its_rows(tmp_path):
    root = _write(tmp_path / "data", "parquet", {"train": TRAIN_NAMES * 3, "test": TEST_NAMES})
    cfg = DataConfig(dataset="parquet", data_dir=str(root), train_limit=6, image_size=16)
    limited = load_images(cfg, "train")
    assert sorted(limited.labels.tolist()) == [0, 0, 2, 2, 3, 3]
    paths = image_paths(cfg, "train")
    assert [_ids(TRAIN_NAMES * 3)[row] for row in paths.rows] == limited.labels.tolist()


@pytest.mark.parametrize("loader", ["resident", "stream"])
def test_a_missing_name_is_one_error_naming_its_row_before_any_step(tmp_path, loader):
    from simclr_core.train import check_inputs

    root = _write(tmp_path / "data", "parquet", {"train": ["cat", "dog", None, "cat"], "test": TEST_NAMES})
    cfg = RunConfig(batch_size=2).with_overrides({"data.dataset": "parquet", "data.data_dir": str(root),
                                                  "data.loader": loader, "data.train_limit": None,
                                                  "data.test_limit": None})
    with pytest.raises(ConfigError, match=r"row 2 of \S+train.parquet.* has label None where the column's other "
                                          r"rows hold class names \('bee', 'cat', 'dog'\): give every row "
                                          r"its class name"):
        check_inputs(cfg)


def test_the_streamed_index_of_names_records_them(tmp_path):
    root = _write(tmp_path / "data", "parquet", {"train": TRAIN_NAMES, "test": TEST_NAMES})
    split = open_encoded(DataConfig(dataset="parquet", data_dir=str(root)), "train")
    assert split.class_names == tuple(CLASSES) and split.num_classes == 4
    assert split.labels.tolist() == _ids(TRAIN_NAMES)


def test_ids_stay_ids_where_a_classlabel_stores_them(tmp_path):
    """A `datasets` ClassLabel column holds ids (its names in the schema's metadata): nothing is renumbered."""
    root = tmp_path / "data"
    root.mkdir()
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["z", "y"])})
    for split in ("train", "test"):
        datasets.Dataset.from_dict({"image": png_rows(4, 1), "label": [1, 0, 1, 0]}, features=features) \
            .to_parquet(str(root / f"{split}.parquet"))
    cfg = DataConfig(dataset="parquet", data_dir=str(root), train_limit=None, test_limit=None, image_size=16)
    for loader in ("resident", "stream"):
        feed = open_feed(replace(cfg, loader=loader), need_test=True)
        assert feed.train_labels.tolist() == [1, 0, 1, 0] and feed.num_classes == 2
        assert feed.class_names is None and "class_names" not in feed.stats()


@pytest.mark.parametrize("loader", ["resident", "stream"])
def test_a_supervised_run_learns_from_names_and_final_json_lists_them(tmp_path, loader):
    from simclr_core.train import train

    root = _write(tmp_path / "data", "parquet", {"train": TRAIN_NAMES * 2, "test": ["ant", "cat", "dog", "cat"]})
    cfg = RunConfig().with_overrides({
        "data.dataset": "parquet", "data.data_dir": str(root), "data.loader": loader, "data.image_size": 16,
        "data.train_limit": None, "data.test_limit": None, "encoder.width": 0.25, "batch_size": 8, "max_steps": 2,
        "optim.warmup_epochs": 0, "method": "supervised", "eval.protocols": ("supervised",)})
    metrics = train(cfg, tmp_path / "run")
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    assert final["class_names"] == metrics["class_names"] == ["ant", "cat", "dog"]     # no "bee" here
    assert final["data_loader"] == loader and 0 <= final["supervised_top1"] <= 100


@pytest.mark.parametrize("loader", ["resident", "stream"])
def test_a_split_of_names_beside_a_split_of_ids_is_one_error_naming_both(tmp_path, loader):
    """Numbering the names would give ids that number other classes than the ids of the other split."""
    root = _write(tmp_path / "data", "parquet", {"train": TRAIN_NAMES})
    pq.write_table(pa.table({"image": png_rows(3, 0), "label": pa.array([0, 1, 2], pa.int64())}), root / "test.parquet")
    cfg = DataConfig(dataset="parquet", data_dir=str(root), loader=loader, train_limit=None, image_size=16)
    with pytest.raises(ConfigError, match=r"train.parquet \(parquet\) labels its images by class names and \S+"
                                          r"test.parquet \(parquet\) by class ids: label every split alike"):
        open_feed(cfg, need_test=False)


def test_a_hub_dataset_of_names_is_numbered_over_its_splits_as_the_run_downloads_them(tmp_path, monkeypatch):
    """A Hub split is read only when the run downloads it: its names are numbered then, over both Hub splits."""
    import huggingface_hub

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    features = datasets.Features({"img": datasets.Image(), "label": datasets.Value("string")})
    names = {"train": TRAIN_NAMES, "test": TEST_NAMES}
    loads = []

    def hub_copy(path, split):                   # stands in for the HF cache's copy of the Hub dataset
        loads.append(split)
        return datasets.Dataset.from_dict({"img": png_rows(len(names[split]), 0), "label": names[split]},
                                          features=features)

    monkeypatch.setattr(datasets, "load_dataset", hub_copy)
    # a stand-in of four classes: a copy of CIFAR-10 naming other than the catalog's 10 is refused
    monkeypatch.setitem(catalog._SPECS, "cifar10", replace(catalog.dataset_spec("cifar10"), num_classes=4))
    cfg = DataConfig(dataset="cifar10", train_limit=None, test_limit=None, image_size=16)
    for loader in ("resident", "stream"):
        feed = open_feed(replace(cfg, loader=loader), need_test=False)
        assert feed.train_labels.tolist() == _ids(TRAIN_NAMES) and feed.num_classes == 4
    assert set(loads) == {"train", "test"}


@pytest.mark.parametrize("loader", ["resident", "stream"])
def test_data_label_column_names_the_column_of_labels(tmp_path, loader):
    """Labels under another name ("target") read as none before: the split was unlabelled."""
    root = tmp_path / "data"
    root.mkdir()
    for split, names in (("train", TRAIN_NAMES), ("test", TEST_NAMES)):
        pq.write_table(pa.table({"image": png_rows(len(names), 1), "target": names,
                                 "label": [7] * len(names)}), root / f"{split}.parquet")       # a decoy
    cfg = DataConfig(dataset="parquet", data_dir=str(root), loader=loader, train_limit=None, test_limit=None,
                     image_size=16)
    assert open_feed(cfg, need_test=False).train_labels.tolist() == [7] * len(TRAIN_NAMES)     # the decoy column
    feed = open_feed(replace(cfg, label_column="target"), need_test=False)
    assert feed.train_labels.tolist() == _ids(TRAIN_NAMES) and feed.class_names == tuple(CLASSES)
    with pytest.raises(ConfigError, match=r"train.parquet.* has no column 'class' \(data.label_column\); its columns: "
                                          r"image, target, label"):
        open_feed(replace(cfg, label_column="class"), need_test=False)


def test_data_label_column_is_refused_where_labels_are_class_folders_and_left_out_of_run_ids():
    from registry.run_id import config_hash

    cfg = RunConfig()
    with pytest.raises(ConfigError, match=r"data.label_column='target' does not apply to data.dataset='imagefolder'"):
        cfg.with_overrides({"data.dataset": "imagefolder", "data.label_column": "target"}).validate()
    assert config_hash(cfg) == config_hash(cfg.with_overrides({"data.label_column": None}))
    assert config_hash(cfg) != config_hash(cfg.with_overrides({"data.label_column": "target"}))


def test_a_split_decoded_with_another_label_column_is_not_read_from_the_cache(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    pq.write_table(pa.table({"image": png_rows(4, 1), "target": [0, 1, 2, 3], "label": [1, 1, 0, 0]}),
                   root / "train.parquet")
    cfg = DataConfig(dataset="parquet", data_dir=str(root), loader="resident", train_limit=None, image_size=16)
    assert load_images(cfg, "train").labels.tolist() == [1, 1, 0, 0]
    assert load_images(replace(cfg, label_column="target"), "train").labels.tolist() == [0, 1, 2, 3]
    assert load_images(cfg, "train").labels.tolist() == [1, 1, 0, 0]


def test_data_label_column_is_refused_for_tar_shards(tmp_path):
    import tarfile

    root = tmp_path / "data"
    root.mkdir()
    with tarfile.open(root / "train-000.tar", "w") as tar:
        for name, data in (("a.png", png_rows(1, 0)[0]["bytes"]), ("a.cls", b"0")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ConfigError, match=r"data.label_column='target' names a column of parquet or arrow files"):
        open_encoded(DataConfig(dataset="parquet", data_dir=str(root), label_column="target"), "train")


@pytest.mark.parametrize("layout", ["folder", "column"])
def test_class_names_alike_but_for_case_or_spaces_are_told(tmp_path, monkeypatch, layout):
    """"cat", "Cat" and " cat" are three classes: likely one class written three ways, so it is said."""
    from image_rows import png_rows
    from simclr_core.data.encoded import open_encoded

    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "data"
    names = ["cat", "Cat", " cat", "dog"]
    if layout == "folder":
        for i, name in enumerate(names):
            (data / "train" / name).mkdir(parents=True)
            (data / "train" / name / "0.png").write_bytes(png_rows(1, i)[0]["bytes"])
        cfg = DataConfig(dataset="imagefolder", data_dir=str(data))
    else:
        data.mkdir()
        pq.write_table(pa.table({"image": png_rows(4, 0), "label": names}), data / "train.parquet")
        cfg = DataConfig(dataset="parquet", data_dir=str(data))
    with pytest.warns(UserWarning, match=r"differ only in case or surrounding spaces: ' cat', 'Cat', 'cat'; each is a "
                                         r"class of its own"):
        split = open_encoded(cfg, "train")
    assert split.num_classes == 4
