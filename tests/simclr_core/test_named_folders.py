"""A named dataset (ImageNet, a Table 8 transfer set, CIFAR) given as class folders (ILSVRC's train/<wnid>/*.JPEG,
val/<wnid>/*.JPEG) is read under its own name, as "imagefolder" reads such a tree: the run's config and id stay
the paper's, final.json's data_source says it was a folder, and a folder that cannot be the dataset (another number
of classes, ILSVRC's flat val/) is one error before anything is read."""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from simclr_core.config import DataConfig, RunConfig
from simclr_core.data import catalog
from simclr_core.data.feed import data_identity
from simclr_core.data.images import load_images
from simclr_core.data.locate import DataNotFoundError, locate_source
from simclr_core.validation import ConfigError

WNIDS = ("n01440764", "n01443537", "n01484850")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SIMCLR_DATA_DIR", raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)      # nothing may come from the Hub here
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")


@pytest.fixture
def three_class_imagenet(monkeypatch):
    """ImageNet's catalog entry with 3 classes instead of 1000, so that a tree the tests can make meets it."""
    monkeypatch.setitem(catalog._SPECS, "imagenet", replace(catalog.dataset_spec("imagenet"), num_classes=3))


def class_tree(root: Path, splits: dict[str, int], classes=WNIDS, sizes=(32, 60), seed: int = 0) -> Path:
    """`root/<split>/<class>/<i>.JPEG|.png`, `splits[split]` images per class, of varied sizes, whose colour gives
    their class away (channel c bright)."""
    rng = np.random.default_rng(seed)
    for split, per_class in splits.items():
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                h, w = (int(v) for v in rng.integers(*sizes, size=2))
                pixels = rng.integers(0, 40, (h, w, 3), dtype=np.uint8)
                pixels[..., c % 3] = 230
                suffix = ".png" if i % 3 == 2 else ".JPEG"
                Image.fromarray(pixels).save(root / split / name / f"{name}_{i}{suffix}")
    return root


def parquet_copy(folder: Path, target: Path) -> Path:
    """The same images in the Hub's parquet layout (train-*.parquet, validation-*.parquet)."""
    target.mkdir(parents=True)
    for split, hub in (("train", "train"), ("val", "validation")):
        rows, labels = [], []
        for label, name in enumerate(sorted(p.name for p in (folder / split).iterdir())):
            for path in sorted((folder / split / name).iterdir()):
                rows.append({"bytes": path.read_bytes(), "path": path.name})
                labels.append(label)
        features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=3)})
        datasets.Dataset.from_dict({"image": rows, "label": labels}, features=features).to_parquet(
            str(target / f"{hub}-00000-of-00001.parquet"))
    return target


def tiny_run(data_dir: Path, **overrides) -> RunConfig:
    return RunConfig().with_overrides({
        "data.dataset": "imagenet", "data.data_dir": str(data_dir), "data.image_size": 32, "encoder.width": 0.25,
        "batch_size": 8, "epochs": 1, "max_steps": 2, "optim.warmup_epochs": 0.25, "log_every_steps": 1,
        "checkpoint_every_steps": 2, "eval.protocols": ("knn", "linear"), "eval.knn_k": 3, "eval.linear_epochs": 1,
        "seed": 1, **overrides})


# ---- ImageNet as ILSVRC's class folders ------------------------------------------------------------------------
def test_imagenet_as_class_folders_trains_streamed_and_evaluates_under_its_own_name(tmp_path, three_class_imagenet):
    """It was '... has no train .parquet/.arrow/.tar files': the user had to convert the tree, or run
    data.dataset=imagefolder, another config and run id than the paper's."""
    from registry.run_id import config_hash
    from simclr_core.train import check_inputs, train

    folder = class_tree(tmp_path / "ILSVRC2012", {"train": 8, "val": 3})
    cfg = tiny_run(folder)
    check_inputs(cfg)                                     # the launcher's check: found, counted, labelled
    metrics = train(cfg, tmp_path / "run")
    assert metrics["data_loader"] == "stream"
    assert metrics["data_source"] == f"imagefolder {folder} split 'train'"       # read from a folder
    assert metrics["unreadable_images"] == metrics["unreadable_eval_images"] == 0
    # what was read, for the report's "what ran" (the catalog says 1,281,167 images)
    assert (metrics["train_split_images"], metrics["train_split_classes"]) == (24, 3)
    for name in ("knn_top1", "linear_top1"):
        assert 0.0 <= metrics[name] <= 100.0, name
    assert tiny_run(folder).data.dataset == "imagenet"
    parquet = parquet_copy(folder, tmp_path / "hub")
    assert config_hash(tiny_run(parquet)) == config_hash(cfg)                  # the same run as the Hub layout's
    assert data_identity(cfg.data) is None                # a named dataset: its name says which images it is


def test_the_folder_and_the_parquet_layout_give_the_same_labels_and_parquet_files_win(tmp_path, three_class_imagenet):
    from simclr_core.data.encoded import open_encoded

    folder = class_tree(tmp_path / "imagenet", {"train": 4, "val": 2})
    parquet = parquet_copy(folder, tmp_path / "hub")
    for split in ("train", "test"):
        from_folder = open_encoded(DataConfig(dataset="imagenet", data_dir=str(folder)), split)
        from_parquet = open_encoded(DataConfig(dataset="imagenet", data_dir=str(parquet)), split)
        assert from_folder.labels.tolist() == from_parquet.labels.tolist() and from_folder.num_classes == 3
        assert from_folder.read([0]) == from_parquet.read([0])                 # the same bytes, in the same order
    for path in parquet.iterdir():                                             # both layouts in one folder
        shutil.copy(path, folder)
    spec = catalog.dataset_spec("imagenet")
    both = locate_source(spec, str(folder), "train")
    assert both.kind == "files" and both.location == "parquet"
    # One split as files, the other as class folders: labels numbered two ways, which nothing checks; refused
    (folder / "validation-00000-of-00001.parquet").unlink()
    for split in ("train", "test"):
        with pytest.raises(ConfigError, match=rf"^{folder} holds one split of imagenet as class folders "
                                              rf"\({folder}/val/\) and the other as files "
                                              r"\(\S+train-00000-of-00001.parquet \(parquet\)\)"):
            locate_source(spec, str(folder), split)


def test_a_folder_with_another_number_of_classes_is_one_error_before_anything_is_read(tmp_path, monkeypatch):
    from simclr_core.data import encoded
    from simclr_core.train import check_inputs, train

    folder = class_tree(tmp_path / "imagenet", {"train": 2, "val": 1})
    monkeypatch.setattr(encoded, "open_folder", lambda *a, **k: pytest.fail("the folder was listed"))
    for check in (check_inputs, lambda cfg: train(cfg, tmp_path / "run")):
        with pytest.raises(ConfigError) as error:
            check(tiny_run(folder))
        assert str(error.value) == (f"{folder} holds 3 class folders (in train/, val/), and imagenet has 1000 "
                                    "classes: a wrong folder or a partial copy; give the folder of a complete copy, "
                                    "one folder per class in each split")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_flat_validation_folder_needs_class_folders_where_the_run_needs_its_labels(tmp_path, three_class_imagenet):
    """ILSVRC2012's val/ comes as 50,000 JPEGs in one folder."""
    from simclr_core.train import check_inputs

    folder = class_tree(tmp_path / "imagenet", {"train": 4})
    (folder / "val").mkdir()
    for i in range(5):
        Image.new("RGB", (30, 20)).save(folder / "val" / f"ILSVRC2012_val_{i:08d}.JPEG")
    with pytest.raises(ConfigError) as error:
        check_inputs(tiny_run(folder))                    # kNN and linear evaluation score the val images
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{folder / 'val'} holds 5 images directly, in no class folder, so they have no "
                              f"labels: imagenet's 'val' split needs class folders ({folder / 'val'}/<class>/<image>, "
                              "named as those in train/)")
    assert "valprep.sh" in message
    check_inputs(tiny_run(folder, **{"eval.protocols": None, "eval.knn_every_epochs": 0}))   # pretraining alone


def test_imagenet_folders_without_any_class_folder_are_images_without_labels(tmp_path):
    """No class count to compare: pretraining on them runs, and what would classify them is refused, saying how
    ILSVRC's val/ gets its class folders."""
    from simclr_core.train import check_inputs

    for split in ("train", "val"):
        (tmp_path / "flat" / split).mkdir(parents=True)
        for i in range(8):
            Image.new("RGB", (24 + i, 20)).save(tmp_path / "flat" / split / f"{i}.JPEG")
    with pytest.raises(ConfigError, match=r"has no labels \(no class folders\).*valprep\.sh"):
        check_inputs(tiny_run(tmp_path / "flat", **{"eval.protocols": ("linear",), "eval.knn_every_epochs": 0}))
    check_inputs(tiny_run(tmp_path / "flat", **{"eval.protocols": None, "eval.knn_every_epochs": 0}))


def test_a_missing_named_dataset_says_class_folders_are_a_way_to_provide_it(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError) as error:
        locate_source(catalog.dataset_spec("imagenet"), str(tmp_path / "empty"), "train")
    first, *rest = str(error.value).splitlines()
    assert f"{tmp_path / 'empty'} has no train .parquet/.arrow/.tar files and no train/ folder of class folders" \
        in first
    assert "(or class folders: train/<class>/<image>)" in first
    assert "class folders under train/ and validation/ or val/" in rest[-1]


def test_named_folders_tell_two_folders_apart_and_a_copy_as_the_same(tmp_path, three_class_imagenet):
    spec = catalog.dataset_spec("imagenet")
    first = class_tree(tmp_path / "a", {"train": 3, "val": 1})
    other = class_tree(tmp_path / "b", {"train": 3, "val": 1}, seed=1)
    copy = Path(shutil.copytree(first, tmp_path / "elsewhere" / "a"))
    identity = locate_source(spec, str(first), "train").content_identity()
    assert locate_source(spec, str(copy), "train").content_identity() == identity
    assert locate_source(spec, str(other), "train").content_identity() != identity
    # "imagefolder", named by its container, records it: two folders stay apart, a copy is the same
    folder_identity = data_identity(DataConfig(dataset="imagefolder", data_dir=str(first)))
    assert folder_identity == data_identity(DataConfig(dataset="imagefolder", data_dir=str(copy)))
    assert folder_identity != data_identity(DataConfig(dataset="imagefolder", data_dir=str(other)))


# ---- CIFAR-sized sets as folders: decoded once, as their parquet files are -------------------------------------
def test_cifar10_as_class_folders_is_decoded_to_the_resident_cache(tmp_path, monkeypatch):
    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    folder = class_tree(tmp_path / "cifar10", {"train": 2, "test": 1}, classes=classes, sizes=(32, 33))
    cfg = DataConfig(dataset="cifar10", data_dir=str(folder))
    train = load_images(cfg, "train")
    assert train.images.shape == (20, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.tolist() == [c for c in range(10) for _ in range(2)] and train.num_classes == 10
    assert train.source == f"imagefolder {folder} split 'train'"
    first = folder / "train" / "airplane" / "airplane_0.JPEG"
    assert torch.equal(train.images[0], torch.from_numpy(np.array(Image.open(first).convert("RGB"))).permute(2, 0, 1))
    monkeypatch.setattr("simclr_core.data.images.decode_to_array", lambda *a, **k: pytest.fail("decoded again"))
    assert torch.equal(load_images(cfg, "train").images, train.images)          # read from the uint8 cache
    for split in ("train", "test"):
        shutil.rmtree(folder / split / "truck")
    with pytest.raises(ConfigError, match=r"holds 9 class folders \(in train/, test/\), and cifar10 has 10 classes"):
        load_images(cfg, "test")


# ---- Table 8's transfer sets as folders --------------------------------------------------------------------------
def _small_encoder() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten())


@pytest.mark.parametrize("given_by", ["eval.transfer_data_dir", "SIMCLR_DATA_DIR"])
def test_a_transfer_dataset_given_as_class_folders_evaluates(tmp_path, monkeypatch, given_by):
    """Caltech-101, Birdsnap and FGVC-Aircraft have no Hub copy: their users have folders. DTD's 47 classes here."""
    from simclr_core.evaluate.transfer import require_transfer_data, run_transfer

    classes = tuple(f"texture{c:02d}" for c in range(47))
    folder = class_tree(tmp_path / "root" / "dtd", {"train": 2, "test": 1}, classes=classes, sizes=(16, 40))
    overrides = {"eval.protocols": ("transfer",), "eval.transfer_dataset": "dtd",
                 "eval.transfer_protocols": ("linear",), "eval.linear_epochs": 2}
    if given_by == "SIMCLR_DATA_DIR":
        monkeypatch.setenv("SIMCLR_DATA_DIR", str(tmp_path / "root"))
    else:
        overrides["eval.transfer_data_dir"] = str(folder)
    cfg = RunConfig().with_overrides(overrides)
    require_transfer_data(cfg)
    metrics = run_transfer(_small_encoder(), cfg, image_size=16, mean=(0.5,) * 3, std=(0.25,) * 3)
    assert metrics["transfer_loader"] == "stream" and metrics["transfer_source"].startswith(f"imagefolder {folder}")
    assert metrics["transfer_train_images"] == 94 and metrics["transfer_test_images"] == 47
    assert 0.0 <= metrics["transfer_linear_top1"] <= 100.0
    for split in ("train", "test"):
        shutil.rmtree(folder / split / "texture46")
    with pytest.raises(ConfigError, match=rf"^{folder} holds 46 class folders \(in train/, test/\), and dtd has 47"):
        require_transfer_data(cfg)


def test_caltech101_counts_its_background_folder_as_the_102nd_class(tmp_path):
    """Caltech-101 had no class count, so a copy without the background category (101 class folders) was read as the
    paper's 102-class set (Kornblith et al. 2019: 30 training images x 102 classes) without a word."""
    from simclr_core.evaluate.transfer import load_transfer_split, require_transfer_data

    classes = ("BACKGROUND_Google", *(f"category{c:03d}" for c in range(101)))
    folder = class_tree(tmp_path / "caltech101", {"train": 1, "test": 1}, classes=classes, sizes=(8, 12))
    cfg = RunConfig().with_overrides({"eval.protocols": ("transfer",), "eval.transfer_dataset": "caltech101",
                                      "eval.transfer_data_dir": str(folder), "eval.transfer_protocols": ("linear",)})
    require_transfer_data(cfg)
    train = load_transfer_split(cfg, "train", image_size=8)
    assert train.num_classes == 102 and sorted(train.labels.tolist()) == list(range(102))
    for split in ("train", "test"):
        shutil.rmtree(folder / split / "BACKGROUND_Google")
    with pytest.raises(ConfigError) as error:
        require_transfer_data(cfg)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{folder} holds 101 class folders (in train/, test/), and caltech101 has 102 classes: ")
    assert "counts the background category" in message and "BACKGROUND_Google" in message
    assert "is another dataset" in message


def test_a_partial_caltech101_copy_is_not_told_to_add_the_background_folder(tmp_path):
    """A copy of 50 Caltech-101 categories was told that it lacked BACKGROUND_Google and to add it, which leaves 51
    of the 102 classes: only a copy one class short, the background one, is the 101-category copy."""
    from simclr_core.evaluate.transfer import require_transfer_data

    folder = class_tree(tmp_path / "caltech101", {"train": 1, "test": 1}, classes=[f"c{c:02d}" for c in range(50)],
                        sizes=(8, 12))
    cfg = RunConfig().with_overrides({"eval.protocols": ("transfer",), "eval.transfer_dataset": "caltech101",
                                      "eval.transfer_data_dir": str(folder), "eval.transfer_protocols": ("linear",)})
    with pytest.raises(ConfigError) as error:
        require_transfer_data(cfg)
    assert str(error.value) == (f"{folder} holds 50 class folders (in train/, test/), and caltech101 has 102 classes: "
                                "a wrong folder or a partial copy; give the folder of a complete copy, one folder per "
                                "class in each split")


def labelled_parquet_copy(target: Path, labels: range, declared: int | None = None, seed: int = 0,
                          column: str = "label") -> Path:
    """train.parquet and test.parquet of one 8x8 image per label in `labels`; the label column `column` a ClassLabel
    of `declared` classes, else plain integers."""
    rng = np.random.default_rng(seed)
    target.mkdir(parents=True)
    for split in ("train", "test"):
        rows = []
        for _ in labels:
            path = target / "image.png"
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(path)
            rows.append({"bytes": path.read_bytes(), "path": None})
        label = datasets.ClassLabel(num_classes=declared) if declared else datasets.Value("int64")
        features = datasets.Features({"image": datasets.Image(), column: label})
        datasets.Dataset.from_dict({"image": rows, column: list(labels)}, features=features).to_parquet(
            str(target / f"{split}.parquet"))
    (target / "image.png").unlink()
    return target


@pytest.mark.parametrize("loader", ["stream", "resident"])
def test_a_caltech101_copy_labelled_without_its_background_class_is_refused(tmp_path, loader):
    """Caltech-101 as parquet with labels 0-100 (torchvision's copy leaves the background category out) was read as
    the paper's 102 classes without a word, while the same copy as class folders was refused: both are refused
    now, before anything is decoded, and the complete copy is read."""
    from simclr_core.evaluate.transfer import require_transfer_data

    def cfg(folder):
        return RunConfig().with_overrides({
            "eval.protocols": ("transfer",), "eval.transfer_dataset": "caltech101", "eval.transfer_loader": loader,
            "eval.transfer_data_dir": str(folder), "eval.transfer_protocols": ("linear",)})

    require_transfer_data(cfg(labelled_parquet_copy(tmp_path / "full", range(102))))
    short = labelled_parquet_copy(tmp_path / "short", range(101))
    with pytest.raises(ConfigError) as error:
        require_transfer_data(cfg(short))
    message = str(error.value)
    assert "\n" not in message and message.startswith(str(short))
    assert "its labels run from 0 to 100, and caltech101 has 102 classes" in message
    assert "counts the background category" in message and "BACKGROUND_Google" in message
    assert "use a copy that keeps it" in message
    declared = labelled_parquet_copy(tmp_path / "declared", range(101), declared=101)
    with pytest.raises(ConfigError, match="its label column declares 101 classes, and caltech101 has 102 classes: "
                                          "the paper's transfer protocol"):
        require_transfer_data(cfg(declared))


@pytest.mark.parametrize("loader", ["stream", "resident"])
def test_a_label_column_declaring_another_class_count_than_the_catalogs_is_refused(tmp_path, loader):
    """FGVC-Aircraft copies label by variant (100 classes, the paper's), family (70) or manufacturer (30): a copy
    whose ClassLabel declared 70 trained and scored a 70-way classifier under the paper's dataset name."""
    from simclr_core.evaluate.transfer import require_transfer_data

    folder = labelled_parquet_copy(tmp_path / "fgvc_aircraft", range(70), declared=70)
    cfg = RunConfig().with_overrides({
        "eval.protocols": ("transfer",), "eval.transfer_dataset": "fgvc_aircraft", "eval.transfer_loader": loader,
        "eval.transfer_data_dir": str(folder), "eval.transfer_protocols": ("linear",)})
    with pytest.raises(ConfigError) as error:
        require_transfer_data(cfg)
    assert str(error.value).endswith("its label column declares 70 classes, and fgvc_aircraft has 100 classes: a "
                                     "wrong dataset or a partial copy; give a complete copy, labelled by the "
                                     "dataset's own classes")


@pytest.mark.parametrize("loader", ["stream", "resident"])
def test_a_label_column_the_run_names_is_held_to_no_catalog_count(tmp_path, loader):
    """CIFAR-100's coarse labels (data.label_column=coarse_label) are 20 classes of the dataset's 100: a run that
    names its own label column is not held to the catalog's count."""
    from simclr_core.data.feed import open_feed

    folder = labelled_parquet_copy(tmp_path / "cifar100", range(20), declared=20, column="coarse_label")
    data = DataConfig(dataset="cifar100", data_dir=str(folder), loader=loader, label_column="coarse_label",
                      train_limit=None, test_limit=None, image_size=8)
    assert open_feed(data, need_test=False).num_classes == 20
    plain = labelled_parquet_copy(tmp_path / "plain", range(20), declared=20)       # its own labels: 20 of 100
    with pytest.raises(ConfigError, match="its label column declares 20 classes, and cifar100 has 100 classes"):
        open_feed(replace(data, data_dir=str(plain), label_column=None), need_test=False)


def test_a_copy_decoded_before_class_counts_were_checked_is_refused_from_the_cache_too(tmp_path, monkeypatch):
    """The decoded cache keeps a split's class count: an FGVC-Aircraft copy labelled by family (70 classes) decoded
    before such copies were refused was read from the cache as the paper's dataset, while the same copy decoded
    afresh is refused."""
    from simclr_core.data import images
    from simclr_core.evaluate.transfer import require_transfer_data

    folder = labelled_parquet_copy(tmp_path / "fgvc_aircraft", range(70), declared=70)
    data = DataConfig(dataset="fgvc_aircraft", data_dir=str(folder), loader="resident", train_limit=None,
                      test_limit=None)        # the transfer evaluation's: the images' own size
    with monkeypatch.context() as unchecked:      # as the code before the check decoded it
        unchecked.setattr(images, "require_catalog_classes", lambda *args: None)
        assert [load_images(data, split).num_classes for split in ("train", "test")] == [70, 70]
    refused = "its label column declares 70 classes, and fgvc_aircraft has 100 classes"
    with pytest.raises(ConfigError, match=refused):
        load_images(data, "train")
    cfg = RunConfig().with_overrides({
        "eval.protocols": ("transfer",), "eval.transfer_dataset": "fgvc_aircraft", "eval.transfer_loader": "resident",
        "eval.transfer_data_dir": str(folder), "eval.transfer_protocols": ("linear",)})
    with pytest.raises(ConfigError, match=refused):
        require_transfer_data(cfg)


def test_a_plan_counts_the_class_folders_own_images_not_the_catalogs(tmp_path, three_class_imagenet):
    """`run --scale paper --dry-run data.data_dir=<ImageNet class folders>` planned the catalog's 1,281,167 images
    (31,200 steps, 88 GPU-hours) for a tree of a few thousand, and missed that batch_size exceeds its images."""
    from registry.estimate import estimate, split_sizes

    folder = class_tree(tmp_path / "ILSVRC2012", {"train": 8, "val": 3})
    cfg = tiny_run(folder, max_steps=None, batch_size=8, epochs=2)
    assert split_sizes(cfg) == (24, 9)
    assert estimate(cfg, "gpu").steps == 2 * (24 // 8)
    assert split_sizes(tiny_run(tmp_path / "nowhere")) == (1_281_167, 50_000)      # not local: the catalog's
