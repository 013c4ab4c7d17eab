"""What train() reads: `open_feed(cfg, device, need_test)` -> a `Feed` for either data path.

    resident   the split decoded once into one uint8 tensor of square images (images.py): CIFAR-sized sets,
               where a step never waits on the host
    stream     encoded images read and decoded a few batches ahead, each view cropped from the original
               image at its own size (encoded.py, stream.py, augment/originals.py): ImageNet, image
               folders, parquet shards; host memory stays bounded

`data.loader` picks one; "auto" streams the photo collections (datasets whose images differ in size:
imagenet, imagefolder, parquet) and keeps the others resident. Both paths read an epoch in an order that is
a pure function of (seed, epoch), so a resumed run continues as one that never stopped.
"""
from __future__ import annotations

import functools
import io
import threading
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from simclr_core.config import DATA_LOADERS as LOADERS, DataConfig
from simclr_core.data.bad_images import BadImages
from simclr_core.data.cache import require_writable_cache
from simclr_core.data.catalog import dataset_spec, loader_for
from simclr_core.data.decode import split_sizes_error
from simclr_core.data.images import ImageSet, check_decodable, count_classes, count_examples, load_images
from simclr_core.data.locate import locate_source
from simclr_core.seeding import epoch_permutation
from simclr_core.validation import ConfigError, require_choice

if TYPE_CHECKING:
    from simclr_core.data.encoded import EncodedSplit

# Datasets up to this size are moved to the accelerator whole, so a step never waits on the host.
DEVICE_RESIDENT_BYTES = 2 << 30
# The view side of a streamed dataset whose catalog entry names none (image folders, parquet): ImageNet's.
DEFAULT_STREAM_SIZE = 224


def resolve_loader(cfg: DataConfig) -> str:
    """"resident" or "stream" for cfg (data.loader, with "auto" decided by the dataset)."""
    require_choice("data.loader", cfg.loader, LOADERS)
    return loader_for(cfg.dataset, cfg.loader)


@dataclass
class Feed:
    """Training batches and evaluation inputs of one run, whichever the path."""
    loader: str
    num_train: int
    num_classes: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    train_eval: Any              # uint8 (N, 3, S, S) tensor, or a stream of such batches (stream.EvalImages)
    train_labels: Tensor
    test_eval: Any
    test_labels: Tensor | None
    resident: ImageSet | None    # the decoded training split (resident path only)
    # Where the training split came from (a file, folder or Hub id), for final.json: the run id leaves
    # data.data_dir out (a path of one machine).
    source: str = ""
    class_names: tuple[str, ...] | None = None   # a label column of names: label i is class_names[i]
    test_classes: int | None = None  # classes of the test split where it was read (0: it has no labels)
    test_source: str = ""
    test_unreadable: int = 0     # resident path: test images left out as unreadable (decode.py)
    _split: Any = None           # stream path: the training split's index (encoded.EncodedSplit)
    _streams: list = None        # stream path: the open batch streams, for their counts
    _earlier: BadImages | None = None    # stream path: what the training batches of earlier sessions met

    @property
    def scored_classes(self) -> int:
        """The classes evaluation scores over: the training split's, or more where the test split's class ids go
        higher (ids read from a column or .cls members count per split; open_feed warns that no training image
        has those classes, which caps the accuracies)."""
        return max(self.num_classes, self.test_classes or 0)

    def batches(self, *, seed: int, rank: int, world: int, local_batch: int, steps_per_epoch: int,
                start_step: int, stop_step: int, device: torch.device,
                labels: bool = False) -> Iterator[tuple[int, Any]]:
        """(step, batch) for this process: a uint8 (B, C, S, S) tensor on `device` (resident) or a list of B
        uint8 (3, H_i, W_i) images on `device` (stream); with `labels`, (step, (batch, labels)), the batch's
        labels an int64 (B,) tensor on `device`."""
        if self.loader == "stream":
            from simclr_core.data.stream import StreamedBatches

            stream = StreamedBatches(self._split, seed=seed, local_batch=local_batch, rank=rank, world=world,
                                     steps_per_epoch=steps_per_epoch, start_step=start_step, stop_step=stop_step,
                                     device=device, view_side=self.image_size, labels=labels,
                                     earlier=self._earlier)
            self._streams.append(stream)
            with stream:
                yield from stream
            return
        images = _place(self.resident.images, device)
        all_labels = self.train_labels.to(images.device, torch.long) if labels else None
        batch_size = local_batch * world
        perm, perm_epoch = None, -1
        for step in range(start_step, stop_step):
            epoch, index_in_epoch = divmod(step, steps_per_epoch)
            if epoch != perm_epoch:
                perm, perm_epoch = epoch_permutation(seed, epoch, self.num_train).to(images.device), epoch
            start = index_in_epoch * batch_size + rank * local_batch
            rows = perm[start:start + local_batch]
            batch = _rows_on(images, rows, device)
            yield step, batch if all_labels is None else (batch, all_labels[rows].to(device, non_blocking=True))

    @staticmethod
    def views(augment, batch: Any, generator: torch.Generator, out: Tensor) -> None:
        """Write augment's views of `batch` into `out` (either path; both views or the small ones)."""
        if isinstance(batch, Tensor):
            augment(batch, generator, out=out)
        else:
            augment.views_from_originals(batch, generator, out=out)

    @staticmethod
    def first_views(augment, batch: Any, generator: torch.Generator, out: Tensor) -> None:
        """Write view 1 alone of `batch` into `out` (either path): what `views` writes in out's first half, with
        the same draws from `generator`."""
        if isinstance(batch, Tensor):
            augment.first_view(batch, generator, out=out)
        else:
            augment.first_view_from_originals(batch, generator, out=out)

    def counts(self, gather: Callable[[Any], list] | None = None, through_step: int | None = None
               ) -> dict[str, BadImages] | None:
        """Streamed path: what the run's readers met (bad_images.py), over every process and, once restore_counts
        gave the checkpoint's, every session: `train_batches`, the training batches up to step `through_step` (all
        this session trained, if None; those read ahead of it are not counted, a resumed run reads them again), and
        the evaluation passes, fine-tuning included, of the training split (`train_eval`) and of the test split
        (`test_eval`, read by the main process alone). `gather(item)`: every process's `item`, a list (train()
        passes its collective where several processes stream, each reading its own images). None on the resident
        path, whose decoding finds a split's unreadable images whole, in every session."""
        if self.loader != "stream":
            return None
        trained = BadImages()
        for stream in self._streams:
            trained.merge(stream.trained(through_step))
        mine = {"train_batches": trained, "train_eval": self.train_eval.bad,
                "test_eval": BadImages() if self.test_eval is None else self.test_eval.bad}
        out = {"train_batches": BadImages() if self._earlier is None else self._earlier.copy(),
               "train_eval": BadImages(), "test_eval": BadImages()}
        parts = [mine] if gather is None else [
            {name: BadImages.from_state(state) for name, state in states.items()}
            for states in gather({name: bad.state() for name, bad in mine.items()})]
        for part in parts:
            for name, bad in out.items():
                bad.merge(part[name])
        return out

    def restore_counts(self, counts: dict[str, dict], main_process: bool) -> None:
        """Continue from the counts a checkpoint kept (counts(...) as BadImages.state()s): the training batches'
        feed the verdict of every process's stream and are counted once; the evaluation passes' go to the main
        process, which makes them."""
        if self.loader != "stream":
            return
        self._earlier = BadImages.from_state(counts["train_batches"])
        if main_process:
            self.train_eval.bad = BadImages.from_state(counts["train_eval"])
            if self.test_eval is not None:
                self.test_eval.bad = BadImages.from_state(counts["test_eval"])

    def evaluation_finds(self) -> dict[str, dict] | None:
        """Streamed path: the images the evaluation passes of the training and test splits found unreadable or
        small, as JSON values (BadImages.finds), for an interrupted evaluation to keep; None on the resident path."""
        if self.loader != "stream":
            return None
        return {"train_eval": self.train_eval.bad.finds(),
                "test_eval": BadImages().finds() if self.test_eval is None else self.test_eval.bad.finds()}

    def add_evaluation_finds(self, finds: dict[str, dict]) -> None:
        """Count what evaluation_finds() of an interrupted evaluation named (streamed path, main process)."""
        self.train_eval.bad.add_finds(finds["train_eval"])
        if self.test_eval is not None:
            self.test_eval.bad.add_finds(finds["test_eval"])

    def stats(self, gather: Callable[[Any], list] | None = None) -> dict[str, Any]:
        """What final.json records about the data path. Unreadable images (bad_images.py), each counted once however
        often it was read: those of the training split (`unreadable_images`) and of the test split
        (`unreadable_eval_images`); resident, those left out when the split was decoded, streamed, those found by
        any read of the split (training batches, evaluation passes, fine-tuning). Streamed, also the training images
        smaller than the view (each once), and the reads of training batches (`images_read`, an image at every
        epoch) and how many of them failed (`unreadable_reads`, each replaced by another image of its batch), over
        every process (`gather`: see counts) and every session of the run (restore_counts)."""
        # The training split's own size and classes: a local copy of a named dataset (ImageNet's class folders,
        # a partial download) need not hold the catalog's, and the report's "what ran" says what was read.
        out: dict[str, Any] = {"data_loader": self.loader, "data_source": self.source,
                               "train_split_images": self.num_train, "train_split_classes": self.num_classes}
        if self.class_names is not None:
            out["class_names"] = list(self.class_names)
        if self.num_classes == 0:
            out["unlabelled"] = True           # a split without a label column: pretrained on, not classified
        counts = self.counts(gather)
        if counts is not None:
            batches, train_eval = counts["train_batches"], counts["train_eval"]
            out.update(images_read=batches.reads, unreadable_reads=batches.failed_reads,
                       unreadable_images=len(batches.rows.keys() | train_eval.rows.keys()),
                       images_smaller_than_view=len(np.union1d(batches.small_rows(), train_eval.small_rows())),
                       unreadable_eval_images=counts["test_eval"].bad)
        else:
            out.update(unreadable_images=len(self.resident.unreadable), unreadable_eval_images=self.test_unreadable)
        return out


def view_side(cfg: DataConfig) -> int:
    """Side of the training views open_feed gives `cfg` (its `image_size`), known without decoding: data.image_size,
    else the dataset's native size, else (folders, parquet files) DEFAULT_STREAM_SIZE for a streamed split and, for
    a resident one, decoded at its first image's size (all of its images share it: decode.py), the shorter side of
    the first training image, read from its header. DEFAULT_STREAM_SIZE where that image cannot be reached
    (missing data is require_data's to say)."""
    size = cfg.image_size or dataset_spec(cfg.dataset).native_size
    if size:
        return size
    if resolve_loader(cfg) == "resident":
        return _first_image_side(cfg.dataset, cfg.data_dir, cfg.loader, cfg.label_column) or DEFAULT_STREAM_SIZE
    return DEFAULT_STREAM_SIZE


@functools.lru_cache(maxsize=32)     # a plan asks once per run: a folder is listed once
def _first_image_side(dataset: str, data_dir: str | None, loader: str, label_column: str | None) -> int | None:
    from PIL import Image

    from simclr_core.data.encoded import open_encoded

    cfg = DataConfig(dataset=dataset, data_dir=data_dir, loader=loader, label_column=label_column)
    try:
        source = locate_source(dataset_spec(dataset), data_dir, "train")
        if source.kind == "hub":
            return None
        with Image.open(io.BytesIO(open_encoded(cfg, "train", source).read([0])[0])) as image:
            return min(image.size)
    except (ConfigError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return None


def open_feed(cfg: DataConfig, need_test: bool, device: torch.device | None = None) -> Feed:
    """The run's data, by its path; a bad dataset fails here, before any step. `device`: where the streamed
    path decodes evaluation images (the run's device)."""
    loader = resolve_loader(cfg)
    if loader == "resident":
        train_set = load_images(cfg, "train")
        test_set = load_images(cfg, "test") if need_test else None
        if test_set is not None and cfg.image_size is None and test_set.images.shape[-1] != train_set.images.shape[-1]:
            raise split_sizes_error(train_set.source, train_set.images.shape[-1], test_set.source,
                                    test_set.images.shape[-1])
        if test_set is not None:
            warn_of_unseen_classes(train_set.labels, test_set.labels, test_set.source, test_set.class_names)
        return Feed("resident", len(train_set), train_set.num_classes, cfg.image_size or train_set.images.shape[-1],
                    train_set.mean, train_set.std, train_set.images, train_set.labels,
                    None if test_set is None else test_set.images, None if test_set is None else test_set.labels,
                    train_set, train_set.source, train_set.class_names,
                    None if test_set is None else test_set.num_classes, "" if test_set is None else test_set.source,
                    0 if test_set is None else len(test_set.unreadable))
    from simclr_core.data.encoded import open_encoded
    from simclr_core.data.stream import EvalImages

    spec = dataset_spec(cfg.dataset)
    size = cfg.image_size or spec.native_size or DEFAULT_STREAM_SIZE
    train_split = open_encoded(cfg, "train")
    test_split = open_encoded(cfg, "test") if need_test else None
    if test_split is not None:
        warn_of_unseen_classes(torch.from_numpy(train_split.labels), torch.from_numpy(test_split.labels),
                               test_split.source, test_split.class_names)
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train_eval = EvalImages(train_split, size, spec.resize_margin, device)
    test_eval = None if test_split is None else EvalImages(test_split, size, spec.resize_margin, device)
    return Feed("stream", len(train_split), train_split.num_classes, size, spec.mean, spec.std, train_eval,
                train_eval.labels, test_eval, None if test_eval is None else test_eval.labels, None, train_split.source,
                train_split.class_names, None if test_split is None else test_split.num_classes,
                "" if test_split is None else test_split.source, _split=train_split, _streams=[])


def warn_of_unseen_classes(train_labels: Tensor, test_labels: Tensor, test_source: str,
                           class_names: tuple[str, ...] | None = None,
                           learners: str = "kNN and linear evaluation") -> None:
    """A warning where test images have labels no training image has: the evaluations that learn from the training
    split (`learners`) can never classify them correctly. The labels are shown by name where the label column held
    names (`class_names`)."""
    unseen = ~torch.isin(test_labels, train_labels.unique())
    if unseen.any():
        shown = test_labels[unseen].unique().tolist()
        if class_names is not None:
            shown = [repr(class_names[label]) for label in shown]
        numbering = "; an image folder's labels number its class folders in sorted order" if \
            test_source.startswith("imagefolder ") else ""
        warnings.warn(f"{int(unseen.sum())} of the {len(test_labels)} test images ({test_source}) have a label that no "
                      f"training image has ({', '.join(map(str, shown[:10]))}{' ...' if len(shown) > 10 else ''}"
                      f"{numbering}): {learners} cannot classify them correctly, which caps their accuracies",
                      stacklevel=2)


def local_split_sizes(cfg: DataConfig) -> tuple[int | None, int | None]:
    """(training, test) images of `cfg`'s splits where they are local files, counted from their index of encoded
    images (a folder's listing, parquet footers; no Arrow copy is made), before data.train_limit /
    data.test_limit; None for a split that is not (a Hub id, missing data: require_data names it). For plans of
    datasets no catalog counts (folders, parquet files)."""
    return _local_split_sizes(cfg.dataset, cfg.data_dir, cfg.label_column)


@functools.lru_cache(maxsize=32)     # a plan asks once per run: a folder is listed once
def _local_split_sizes(dataset: str, data_dir: str | None, label_column: str | None
                       ) -> tuple[int | None, int | None]:
    from simclr_core.data.encoded import open_encoded

    cfg = DataConfig(dataset=dataset, data_dir=data_dir, loader="stream", train_limit=None, test_limit=None,
                     label_column=label_column)
    counts = []
    for split in ("train", "test"):
        try:
            source = locate_source(dataset_spec(dataset), data_dir, split)
            counts.append(None if source.kind == "hub" else len(open_encoded(cfg, split, source)))
        except (ConfigError, OSError):
            counts.append(None)
    return counts[0], counts[1]


def require_data(cfg: DataConfig, need_test: bool,
                 train_index: EncodedSplit | None = None) -> dict[str, EncodedSplit]:
    """Raise DataNotFoundError, naming where it looked and how to provide the data, when a split that
    open_feed(cfg, need_test) reads cannot be found or fetched, and ConfigError when data.train_limit or
    data.test_limit exceeds its split, when a local split to stream has no images or bad labels (its index is
    built: a listing, or the files' footers and labels), or when a split to decode without data.image_size has
    images of different sizes (a sample's headers are read); no image is decoded. A launcher calls it before it
    starts runs, so that missing data is one error, not one failed run each. Returns the indexes of the splits
    (by name) where it has them (local splits to stream), for train_split_size and test_split_classes;
    `train_index`: the one an earlier call returned, not built again."""
    loader = resolve_loader(cfg)
    spec = dataset_spec(cfg.dataset)
    first_images, indexes = {}, {} if train_index is None else {"train": train_index}
    for split in ("train", "test") if need_test else ("train",):
        source = locate_source(spec, cfg.data_dir, split)
        if loader == "stream" and source.kind != "hub":
            from simclr_core.data.encoded import open_encoded

            if split not in indexes:
                indexes[split] = open_encoded(cfg, split, source)
        elif loader == "resident" and check_decodable(cfg, split, source):
            continue            # decoded once already: the run reads the cache, not the source
        else:
            source.require_available()
            if loader == "resident":
                require_writable_cache(f"the decoded images of {spec.name}'s {split} split")
                if source.kind != "imagefolder":          # a folder is decoded from its files, without a copy
                    source.require_hf_cache()
                if cfg.image_size is None and spec.native_size is None and source.kind != "hub":
                    from simclr_core.data.encoded import open_encoded, require_one_size

                    # decoded at its first image's size
                    first_images[split] = require_one_size(open_encoded(cfg, split, source))
    train_first, test_first = first_images.get("train"), first_images.get("test")
    if train_first and test_first and min(train_first[1]) != min(test_first[1]):
        raise split_sizes_error(train_first[0], min(train_first[1]), test_first[0], min(test_first[1]))
    return indexes


def train_split_size(cfg: DataConfig, index: EncodedSplit | None = None) -> tuple[int | None, int | None]:
    """(images a run of `cfg` trains on, classes of its training split), known without decoding: data.train_limit
    (require_data checks it against the split) or the split's count, from its index (`index`, where require_data
    built it already), parquet footers, listing or decoded cache; None for what a Hub split not downloaded yet does
    not say."""
    if index is not None:
        return cfg.train_limit or len(index), index.num_classes
    source = locate_source(dataset_spec(cfg.dataset), cfg.data_dir, "train")
    if resolve_loader(cfg) == "resident":
        return cfg.train_limit or count_examples(cfg, "train", source), count_classes(cfg, "train", source)
    if source.kind == "hub":
        return cfg.train_limit, None
    from simclr_core.data.encoded import open_encoded

    split = open_encoded(cfg, "train", source)
    return cfg.train_limit or len(split), split.num_classes


def test_split_classes(cfg: DataConfig, index: EncodedSplit | None = None) -> int | None:
    """The classes of the test split of `cfg` as the run will find them, without decoding (0: it has no labels),
    from its `index` where require_data built it; None for a Hub split not downloaded yet."""
    if index is not None:
        return index.num_classes
    source = locate_source(dataset_spec(cfg.dataset), cfg.data_dir, "test")
    if resolve_loader(cfg) == "resident":
        return count_classes(cfg, "test", source)
    if source.kind == "hub":
        return None
    from simclr_core.data.encoded import open_encoded

    return open_encoded(cfg, "test", source).num_classes


# Datasets named by their container, not by their content: two folders of "imagefolder" hold other images, yet
# share run ids, which leave data.data_dir out (a path of one machine). final.json records which images a run of
# one of them trained on (`data_identity`), so that a launcher never takes another folder's finished run for this one.
GENERIC_DATASETS = ("imagefolder", "parquet")


def data_identity(cfg: DataConfig) -> str | None:
    """Which training images a run of a GENERIC_DATASETS dataset reads (Source.content_identity), or None for a
    named dataset, whose name says it, or a split not found (require_data names it)."""
    if cfg.dataset not in GENERIC_DATASETS:
        return None
    try:
        return locate_source(dataset_spec(cfg.dataset), cfg.data_dir, "train").content_identity()
    except ConfigError:
        return None
    except OSError as exc:
        warnings.warn(f"which images this run reads could not be recorded ({exc}): final.json holds no "
                      "data_identity, so a finished run of this dataset cannot be told apart from one of another "
                      "folder's", stacklevel=2)
        return None


def data_identity_later(cfg: DataConfig) -> Callable[[], str | None]:
    """data_identity(cfg), taken in a daemon thread from now on; the function returned waits for it. A run starts it
    before its first step: for a folder of a million images, stat'ing each file takes seconds on a local disk and
    minutes on a network file system, time it then spends beside the training instead of after it."""
    if cfg.dataset not in GENERIC_DATASETS:
        return lambda: None
    outcome: dict[str, Any] = {}

    def take() -> None:
        try:
            outcome["identity"] = data_identity(cfg)
        except BaseException as exc:         # raised where it is waited for
            outcome["error"] = exc
    thread = threading.Thread(target=take, name="simclr-data-identity", daemon=True)
    thread.start()

    def wait() -> str | None:
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["identity"]
    return wait


class BatchExceedsSplitError(ConfigError):
    """A batch holds more images than the training split: no step could be made."""


def require_batch_fits(batch_size: int, train_images: int, dataset: str) -> None:
    """BatchExceedsSplitError when a batch holds more images than the training split: no step could be made."""
    if batch_size > train_images:
        raise BatchExceedsSplitError(f"batch_size={batch_size} exceeds the {train_images} training images of "
                                     f"{dataset!r}; choose batch_size <= {train_images}")


def _place(images: Tensor, device: torch.device) -> Tensor:
    if device.type != "cpu" and images.numel() <= DEVICE_RESIDENT_BYTES:
        return images.to(device)
    return images


def _rows_on(images: Tensor, rows: Tensor, device: torch.device) -> Tensor:
    """images[rows] on `device`. From host memory to a GPU, the rows are gathered straight into page-locked
    memory, so that the copy runs asynchronously (a pinned copy of the whole split would double host memory
    and still index into pageable memory); the caching host allocator keeps that buffer until its copy is done."""
    if images.device.type == "cpu" and device.type == "cuda":
        staged = torch.empty((len(rows), *images.shape[1:]), dtype=images.dtype, pin_memory=True)
        return torch.index_select(images, 0, rows, out=staged).to(device, non_blocking=True)
    return images[rows].to(device, non_blocking=True)


__all__ = ["BatchExceedsSplitError", "Feed", "GENERIC_DATASETS", "LOADERS", "data_identity", "data_identity_later",
           "open_feed", "require_batch_fits", "require_data", "resolve_loader", "train_split_size", "view_side"]
