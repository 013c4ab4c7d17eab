"""Transfer learning (Chen et al. 2020, Sec. 4.3, Table 8): the pretrained encoder evaluated on another dataset.

"We evaluate the transfer learning performance of our ImageNet-pretrained ResNet model on 12 natural image
datasets in both linear evaluation (fixed feature extractor) and fine-tuning settings" (Sec. 4.3). The protocols,
chosen by eval.transfer_protocols:

  linear    a linear classifier on the frozen encoder's features of the transfer dataset (linear.py, with the
            eval.linear_* settings); the encoder is checked bit for bit afterwards
  finetune  a copy of the encoder plus a new linear head trained on the whole training split with random crop and
            flip (finetune.py at label fraction 1, with the eval.finetune_* settings); with eval.transfer_scratch,
            also a newly initialised encoder of the same architecture trained the same way (Table 8's "Random init")

Each reports top-1 and mean per-class accuracy (percent) on the test split: transfer_linear_top1,
transfer_linear_mean_per_class_acc, transfer_finetune_top1, transfer_finetune_mean_per_class_acc (and
transfer_scratch_top1, transfer_scratch_mean_per_class_acc). Table 8 prints mean per-class accuracy for Aircraft,
Pets, Caltech-101 and Flowers and top-1 for the others; both are computed.

Data: eval.transfer_dataset names a dataset of the data catalog (data/catalog.py), found like any other
(eval.transfer_data_dir, else $SIMCLR_DATA_DIR/<name>, else its Hub id), at the run's image size, the side of the
pretraining views. It is read as eval.transfer_loader says, which by default is the catalog's choice for it, as
data.loader is for the pretraining data: a fixed-size set (CIFAR) is decoded once and held (data/images.py); a
photo collection (Food-101, Cars, ...) streams (data/stream.py): its encoded images are decoded batch by batch at
every pass, each resized and centre-cropped for the features, and fine-tuning crops its views from the original
photographs, as pretraining does. The images are normalised with the pretraining statistics, so the network sees
inputs as it did in pretraining, and limited like the pretraining data (data.train_limit / data.test_limit, capped
at each split's size; the same class-balanced rows on both paths). `require_transfer_data` runs at the start of
train(): a dataset that cannot be found, or a local one to stream that holds no images or labels, stops the run
before any pretraining step, with a message that names where it looked and how to provide the files.

Departures from Appendix B.8: no hyperparameter search on a validation split (the paper tunes the learning rate
and weight decay per dataset), the linear classifier is trained with SGD (the paper: L-BFGS on l2-regularised
multinomial logistic regression), and fine-tuning runs eval.finetune_epochs epochs (the paper: 20,000 steps at
batch size 256). VOC2007 is refused: Table 8 reports its 11-point mAP, a multi-label metric.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Any, Callable, ContextManager, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from simclr_core.config import DataConfig, RunConfig
from simclr_core.data.catalog import DATASETS, SPLITS, TRANSFER_DATASETS, dataset_spec
from simclr_core.data.class_names import how_labels_are_given
from simclr_core.data.encoded import RowsOf, open_encoded
from simclr_core.data.feed import resolve_loader, warn_of_unseen_classes
from simclr_core.data.images import count_classes, load_images
from simclr_core.data.locate import DataNotFoundError, locate_source
from simclr_core.data.stream import EvalImages
from simclr_core.data.subset import balanced_subset
from simclr_core.evaluate.finetune import Augment, Progress, finetune_eval
from simclr_core.evaluate.linear import linear_eval
from simclr_core.evaluate.parts import Parts, Unsaved, run_part
from simclr_core.validation import ConfigError, require_choice

TRANSFER_PROTOCOLS = ("linear", "finetune")
# final.json's count of the streamed transfer training images smaller than the view (fine-tuning upscales their crops).
SMALL_COUNTED_AS = "transfer_images_smaller_than_view"
# Table 8's datasets whose metric no protocol here computes, and why.
UNSUPPORTED = {
    "voc2007": "VOC2007 is multi-label (20 classes, several per image) and Table 8 reports its 11-point mAP; "
               "the transfer protocols train single-label classifiers and report accuracy",
}


def transfer_datasets() -> tuple[str, ...]:
    """Every name eval.transfer_dataset may take: the pretraining datasets and Table 8's transfer targets."""
    return DATASETS + TRANSFER_DATASETS


def require_transfer_dataset(dataset: str) -> str:
    """`dataset` if eval.transfer_dataset may take it; else ConfigError naming the choices (and, for a Table 8
    dataset no protocol here can score, why)."""
    if dataset in UNSUPPORTED:
        raise ConfigError(f"eval.transfer_dataset={dataset!r} is not supported: {UNSUPPORTED[dataset]}; choose one "
                          f"of: {', '.join(map(repr, transfer_datasets()))}")
    return require_choice("eval.transfer_dataset", dataset, transfer_datasets())


def require_transfer_protocols(protocols: Sequence[str]) -> tuple[str, ...]:
    """`protocols` as a tuple if it is a non-empty sequence of distinct names of TRANSFER_PROTOCOLS."""
    if isinstance(protocols, str) or not isinstance(protocols, (tuple, list)) or not protocols:
        raise ConfigError(f"eval.transfer_protocols={protocols!r} must name at least one of "
                          f"{', '.join(map(repr, TRANSFER_PROTOCOLS))}")
    for protocol in protocols:
        require_choice("eval.transfer_protocols", protocol, TRANSFER_PROTOCOLS)
    if len(set(protocols)) != len(protocols):
        raise ConfigError(f"eval.transfer_protocols={tuple(protocols)!r} names a protocol more than once")
    return tuple(protocols)


def require_transfer(dataset: str, protocols: Sequence[str]) -> None:
    """The checks of eval.transfer_dataset and eval.transfer_protocols (RunConfig.validate)."""
    require_transfer_dataset(dataset)
    require_transfer_protocols(protocols)


# ---- data ---------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _explained(dataset: str) -> Iterator[None]:
    """A DataNotFoundError raised in the block, restated for the transfer dataset."""
    try:
        yield
    except DataNotFoundError as exc:
        # locate.py words its advice for the pretraining data (data.data_dir); the transfer data is found the same
        # way with eval.transfer_data_dir in that place.
        detail = str(exc).replace("data.data_dir", "eval.transfer_data_dir")
        raise DataNotFoundError(f"eval.transfer_dataset={dataset!r} is not available, so the transfer evaluation "
                                f"cannot run: {detail}") from exc


def _transfer_data(cfg: RunConfig, image_size: int | None = None) -> DataConfig:
    ev = cfg.eval
    return DataConfig(dataset=ev.transfer_dataset, data_dir=ev.transfer_data_dir, image_size=image_size,
                      loader=ev.transfer_loader)


def require_transfer_data(cfg: RunConfig) -> None:
    """DataNotFoundError, naming where it looked and how to provide the files, unless both splits of
    eval.transfer_dataset can be found; a Hub copy is opened (from the HF cache when offline), a local split to
    stream is indexed (ConfigError where it holds no images), and a local split without labels to classify is a
    ConfigError; nothing is decoded."""
    data = _transfer_data(cfg)
    spec = dataset_spec(data.dataset)
    with _explained(data.dataset):
        for split in SPLITS:
            source = locate_source(spec, data.data_dir, split)
            if source.kind == "hub":
                source.require_opened()
                continue
            streamed = resolve_loader(data) == "stream"
            classes = open_encoded(data, split, source).num_classes if streamed else count_classes(data, split, source)
            if classes == 0:
                lacking, fix = how_labels_are_given(source)
                raise ConfigError(f"the transfer dataset {data.dataset!r} ({source.describe()}) has no labels "
                                  f"({lacking}), and transfer evaluation classifies its images. {fix}")


@dataclass(frozen=True)
class TransferSplit:
    """A split of the transfer dataset as the protocols read it."""
    images: Any              # uint8 (N, 3, S, S) tensor, or a stream of such batches (stream.EvalImages)
    labels: Tensor
    num_classes: int
    source: str
    loader: str              # "resident" or "stream"
    left_out: int = 0        # resident: images left out as unreadable when the split was decoded

    def __len__(self) -> int:
        return len(self.labels)

    def unreadable(self) -> int:
        """Its images that could not be decoded, each once: left out when the split was decoded (resident), or
        found so far by the passes over it (streamed; after the protocols, which read every image, all of them)."""
        return self.images.bad.bad if self.loader == "stream" else self.left_out

    def used(self) -> int:
        """Its images the protocols read, the unreadable ones left out (resident: `labels` holds none of those)."""
        return len(self) - self.unreadable() if self.loader == "stream" else len(self)

    def smaller_than_view(self) -> dict[str, int]:
        """{SMALL_COUNTED_AS: its images with a side shorter than the view that fine-tuning cropped, each once} where
        the split streams (the crops of those are upscaled); {} where it is held: decoding squared every image."""
        return {SMALL_COUNTED_AS: self.images.bad.small} if self.loader == "stream" else {}


def load_transfer_split(cfg: RunConfig, split: str, image_size: int,
                        device: torch.device | str | None = None) -> TransferSplit:
    """Split `split` of eval.transfer_dataset as square uint8 images of side `image_size`, held or streamed (on
    `device`, where the streamed path decodes) as eval.transfer_loader says, limited like the pretraining data
    (data.train_limit / data.test_limit: data/subset.py's rows; the whole split when the limit exceeds it)."""
    data = _transfer_data(cfg, image_size)
    limit = cfg.data.train_limit if split == "train" else cfg.data.test_limit
    with _explained(data.dataset):
        if resolve_loader(data) == "stream":
            index = open_encoded(data, split)
            if limit is not None and limit < len(index):
                index = RowsOf(index, balanced_subset(index.labels, limit))
            images = EvalImages(index, image_size, dataset_spec(data.dataset).resize_margin,
                                torch.device(device or "cpu"), small_counted_as=SMALL_COUNTED_AS)
            return TransferSplit(images, images.labels, index.num_classes, index.source, "stream")
        data = replace(data, loader="resident")
        if limit is not None and limit < len(locate_source(dataset_spec(data.dataset), data.data_dir, split).load()):
            data = replace(data, **{f"{split}_limit": limit})
        held = load_images(data, split)
        return TransferSplit(held.images, held.labels, held.num_classes, held.source, "resident", len(held.unreadable))


# ---- the protocols ----------------------------------------------------------------------------------------------
def transfer_eval(encoder: nn.Module, train_images: Tensor, train_labels: Tensor, test_images: Tensor,
                  test_labels: Tensor, *, num_classes: int, mean: Sequence[float], std: Sequence[float],
                  protocols: Sequence[str] = TRANSFER_PROTOCOLS, seed: int = 0, linear: dict[str, Any] | None = None,
                  finetune: dict[str, Any] | None = None, augment: Augment | None = None,
                  scratch: nn.Module | None = None, autocast_dtype: torch.dtype | None = None,
                  parts: Parts | None = None) -> dict[str, float]:
    """Top-1 and mean per-class accuracy (percent) of each protocol in `protocols` on a labelled transfer dataset:
    {"transfer_linear_top1", "transfer_linear_mean_per_class_acc", "transfer_finetune_top1",
    "transfer_finetune_mean_per_class_acc"} (those of the protocols run).

    `linear` and `finetune` are further keyword arguments of linear_eval and finetune_eval (epochs, batch_size,
    lr, ...); fine-tuning uses every training label and `augment` (uint8 batch, generator) -> network input.
    With `scratch` (a newly initialised encoder) and "finetune" among `protocols`, that encoder is fine-tuned the
    same way too: "transfer_scratch_top1", "transfer_scratch_mean_per_class_acc".
    The encoders are left unchanged (both protocols check them bit for bit).
    `parts` (parts.Parts; default: none kept): each of transfer_linear, transfer_finetune and transfer_scratch is
    a part, kept as it ends and not run again where kept; each fine-tuning keeps its progress there.
    """
    protocols = require_transfer_protocols(protocols)
    parts = parts if parts is not None else Unsaved()
    data = (encoder, train_images, train_labels, test_images, test_labels)
    common = dict(mean=mean, std=std, num_classes=num_classes, seed=seed, mean_per_class=True)
    metrics: dict[str, float] = {}
    if "linear" in protocols:
        def linear_transfer() -> dict[str, float]:
            result = linear_eval(*data, autocast_dtype=autocast_dtype, **common, **(linear or {}))
            return {"transfer_linear_top1": result["linear_top1"],
                    "transfer_linear_mean_per_class_acc": result["linear_mean_per_class_acc"]}
        metrics.update(run_part(parts, "transfer_linear", linear_transfer))
    if "finetune" in protocols:
        starts = {"finetune": encoder, **({"scratch": scratch} if scratch is not None else {})}
        for prefix, start in starts.items():
            part = f"transfer_{prefix}"

            def fine_tune() -> dict[str, float]:       # called at once, in this iteration
                result = finetune_eval(start, *data[1:], label_fraction=1.0, augment=augment,
                                       progress=parts.progress(part, start), **common, **(finetune or {}))
                return {f"{part}_top1": result["finetune_top1"],
                        f"{part}_mean_per_class_acc": result["finetune_mean_per_class_acc"]}
            metrics.update(run_part(parts, part, fine_tune))
    return metrics


def run_transfer(encoder: nn.Module, cfg: RunConfig, *, image_size: int, mean: Sequence[float], std: Sequence[float],
                 scratch: nn.Module | None = None, autocast_dtype: torch.dtype | None = None,
                 parts: Parts | None = None) -> dict[str, Any]:
    """The transfer protocol of a run: eval.transfer_dataset read at `image_size` (streamed on the encoder's device)
    and normalised with the pretraining statistics `mean`/`std`; `transfer_eval`'s metrics (with `scratch`, a newly
    initialised encoder's fine-tuning too; `parts` as there), the images of each split it used, the data's source
    and path, and how many images could not be read (each once: streamed, found by any pass; held, left out when
    decoded), which the counts of images used leave out on both paths. Each part reads every image of both splits,
    so each saves those counts with its metrics: where every part was kept, they come from there."""
    from simclr_core.augment import build_augmentation
    from simclr_core.config import AugmentConfig

    ev = cfg.eval
    device = next(encoder.parameters()).device
    train, test = (load_transfer_split(cfg, split, image_size, device) for split in SPLITS)
    learners = " and ".join({"linear": "linear evaluation", "finetune": "fine-tuning"}[p]
                            for p in ev.transfer_protocols)
    warn_of_unseen_classes(train.labels.cpu(), test.labels.cpu(), test.source, learners=f"the transfer's {learners}")
    crop = build_augmentation(AugmentConfig(ops=("crop",)), image_size, mean, std)
    # Fine-tuning's one view per image: a crop of each original image where the split streams.
    augment = crop.first_view_from_originals if train.loader == "stream" else crop.first_view

    def counts() -> dict[str, int]:
        return {"transfer_train_images": train.used(), "transfer_test_images": test.used(),
                "transfer_unreadable_images": train.unreadable() + test.unreadable(), **train.smaller_than_view()}

    counted = _Counted(parts, counts)
    metrics = transfer_eval(
        encoder, train.images, train.labels, test.images, test.labels,
        num_classes=max(train.num_classes, test.num_classes), mean=mean, std=std, protocols=ev.transfer_protocols,
        seed=cfg.seed, autocast_dtype=autocast_dtype, augment=augment, scratch=scratch, parts=counted,
        linear=dict(epochs=ev.linear_epochs, batch_size=ev.linear_batch_size, lr=ev.linear_lr),
        finetune=dict(epochs=ev.finetune_epochs, batch_size=ev.finetune_batch_size, lr=ev.finetune_lr,
                      autocast_dtype=autocast_dtype, channels_last=cfg.channels_last))
    return {**metrics, **(counts() if counted.ran else {}), "transfer_source": train.source,
            "transfer_loader": train.loader}


class _Counted:
    """`parts` whose saved metrics hold the images counted so far (`counts()`); `ran`: whether a part ran here."""

    def __init__(self, parts: Parts | None, counts: Callable[[], dict[str, int]]):
        self.parts = parts if parts is not None else Unsaved()
        self.counts = counts
        self.ran = False

    @property
    def kept(self) -> Mapping[str, dict[str, Any]]:
        return self.parts.kept

    def save(self, part: str, metrics: dict[str, Any]) -> None:
        self.ran = True
        self.parts.save(part, {**metrics, **self.counts()})

    def progress(self, part: str, start: nn.Module) -> Progress | None:
        return self.parts.progress(part, start)

    def running(self, part: str) -> ContextManager[None]:
        return self.parts.running(part)


__all__ = ["TRANSFER_PROTOCOLS", "UNSUPPORTED", "TransferSplit", "load_transfer_split", "require_transfer",
           "require_transfer_data", "require_transfer_dataset", "require_transfer_protocols", "run_transfer",
           "transfer_datasets", "transfer_eval"]
