"""The datasets known by name: where each lives on the Hub, what its splits are called, its native image
size and its per-channel statistics.

Channel statistics are fractions of 255 over the training split, as published for the original files; the
test suite re-measures CIFAR-10's on the full files, ../shared/data/cifar10 beside the repository or
$SIMCLR_DATA_DIR/cifar10 (JPEG re-encodings: mean within 1e-4, std within 2e-3). The folder/parquet datasets
have no fixed statistics; they use ImageNet's, so that train and test splits are normalised alike without
reading the training split first.

`TRANSFER_DATASETS` are Table 8's transfer targets (Sec. 4.3, Appendix B.8): loadable by name for the transfer
evaluation (simclr_core/evaluate/transfer.py), not offered for pretraining (data.dataset). Their Hub ids name public
copies with labelled train and test splits, found by search and not downloaded here; None where no such copy was
found, so that only a local folder provides the set. VOC2007 is not among them: its labels are multi-label.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from simclr_core.validation import require_choice

DATASETS = ("cifar10_subset", "cifar10", "cifar100", "stl10", "imagenet", "imagefolder", "parquet")
TRANSFER_DATASETS = ("food101", "birdsnap", "sun397", "stanford_cars", "fgvc_aircraft", "dtd", "oxford_pets",
                     "caltech101", "flowers102")
SPLITS = ("train", "test")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
# The true per-channel std of the pixels; the (0.2023, 0.1994, 0.2010) seen in many repos is not.
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
# As commonly quoted for STL-10 (train + unlabeled); not re-measured here.
STL10_MEAN = (0.4467, 0.4398, 0.4066)
STL10_STD = (0.2603, 0.2566, 0.2713)

# ImageNet's evaluation protocol: resize the shorter side to 256, centre-crop 224 (a ratio of 8/7).
RESIZE_MARGIN = 8 / 7


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    # Hugging Face Hub id used when no local files are found; None -> local files only.
    hub_id: str | None
    # File/folder/Hub split names that stand for our "test" split, in order of preference. The Hub's
    # ImageNet "test" split has no labels (label -1), so ImageNet's "test" is its "validation" split.
    test_split_names: tuple[str, ...]
    # Side of the square images used when data.image_size is None (ImageNet: its 224 centre crop);
    # None -> the side of the first image (folders and parquet files).
    native_size: int | None
    # True for photo collections whose images differ in size and shape.
    variable_size: bool
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    # Number of classes; labels must lie in [0, num_classes). None -> the largest label + 1 (folders, parquet).
    num_classes: int | None = None
    # The label column of its parquet/arrow files as the run names it (data.label_column); None -> the first of
    # class_names.LABEL_COLUMNS.
    label_column: str | None = None

    @property
    def resize_margin(self) -> float:
        """Shorter side / crop side when an image must be resized: 8/7 for photo collections (resize 256,
        centre-crop 224), 1 for fixed-size square datasets (a plain rescale keeps the whole image)."""
        return RESIZE_MARGIN if self.variable_size else 1.0

    def split_names(self, split: str) -> tuple[str, ...]:
        return ("train",) if split == "train" else self.test_split_names


_TEST = ("test", "validation", "val")
_SPECS = {
    spec.name: spec
    for spec in (
        DatasetSpec("cifar10_subset", None, ("test",), 32, False, CIFAR10_MEAN, CIFAR10_STD, 10),
        DatasetSpec("cifar10", "uoft-cs/cifar10", ("test",), 32, False, CIFAR10_MEAN, CIFAR10_STD, 10),
        DatasetSpec("cifar100", "uoft-cs/cifar100", ("test",), 32, False, CIFAR100_MEAN, CIFAR100_STD, 100),
        # The Hub copy holds the 5,000 labelled training images and 8,000 test images, no "unlabeled" split:
        # "train" (pretraining and linear evaluation alike) is the labelled training split.
        DatasetSpec("stl10", "tanganke/stl10", ("test",), 96, False, STL10_MEAN, STL10_STD, 10),
        DatasetSpec("imagenet", "ILSVRC/imagenet-1k", ("validation", "val"), 224, True,
                    IMAGENET_MEAN, IMAGENET_STD, 1000),
        DatasetSpec("imagefolder", None, _TEST, None, True, IMAGENET_MEAN, IMAGENET_STD),
        DatasetSpec("parquet", None, _TEST, None, True, IMAGENET_MEAN, IMAGENET_STD),
    )
}
assert tuple(_SPECS) == DATASETS


def _photos(name: str, hub_id: str | None, num_classes: int | None, test: tuple[str, ...] = _TEST) -> DatasetSpec:
    return DatasetSpec(name, hub_id, test, None, True, IMAGENET_MEAN, IMAGENET_STD, num_classes)


_TRANSFER_SPECS = {
    spec.name: spec
    for spec in (
        _photos("food101", "ethz/food101", 101, ("validation", "test", "val")),   # the Hub copy's test split
        _photos("birdsnap", None, 500),                           # no labelled train/test copy found on the Hub
        _photos("sun397", "tanganke/sun397", 397),
        _photos("stanford_cars", "tanganke/stanford_cars", 196),
        _photos("fgvc_aircraft", None, 100),                      # Hub copies: label columns not verified
        _photos("dtd", "tanganke/dtd", 47),
        _photos("oxford_pets", "timm/oxford-iiit-pet", 37),
        # Kornblith et al. (2019)'s protocol, which Table 8 follows: the 101 object categories and the background
        # one (BACKGROUND_COUNTED_AS_CLASS), 30 training images of each (registry/estimate.py's 3,060).
        _photos("caltech101", None, 102),
        _photos("flowers102", "dpdl-benchmark/oxford_flowers102", 102),
    )
}
assert tuple(_TRANSFER_SPECS) == TRANSFER_DATASETS

# The class folder of the official archive that the paper's class count includes though it is no object category:
# a copy without it holds one class too few and is another dataset.
BACKGROUND_COUNTED_AS_CLASS = {"caltech101": "BACKGROUND_Google"}


def dataset_spec(name: str, label_column: str | None = None) -> DatasetSpec:
    """The spec of dataset ``name`` (a pretraining or a transfer dataset), reading its labels from `label_column`
    where the run names one (data.label_column); ConfigError naming the choices if it is unknown."""
    specs = {**_SPECS, **_TRANSFER_SPECS}
    spec = specs[require_choice("data.dataset", name, specs)]
    return spec if label_column is None else replace(spec, label_column=label_column)


def loader_for(dataset: str, loader: str) -> str:
    """"resident" or "stream": `loader` as given, or for "auto" what the dataset decides (photo collections of
    varying size stream; fixed-size sets are decoded once and held)."""
    if loader != "auto":
        return loader
    return "stream" if dataset_spec(dataset).variable_size else "resident"


def native_image_size(name: str) -> int | None:
    """Side of the dataset's square images when data.image_size is None (32 CIFAR, 96 STL-10, 224 ImageNet
    after its centre crop); None for folders and parquet files, whose size is read from the first image."""
    return dataset_spec(name).native_size
