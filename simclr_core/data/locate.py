"""Where a dataset split comes from: local files first, then the Hugging Face Hub.

Resolution order: ``data.data_dir``, then ``$SIMCLR_DATA_DIR/<dataset>``, then the Hub id (HF offline mode
respected; a Hub host that takes no TCP connection within seconds counts as offline, so a missing dataset fails
at once instead of after the Hub client's retries). A local folder may hold ``train.parquet``/``test.parquet``,
shards such as ``train-00000-of-00004.parquet`` (also ``.arrow``), a Hub snapshot or HF datasets cache (the
same names a few folders down), a ``Dataset.save_to_disk`` folder per split, or class folders under the split's
folder (``train/<class>/<image>``, ``val/<class>/<image>``: the split names the dataset's spec accepts), read as
"imagefolder" reads them; files win where a folder holds both. "imagefolder" is found only as class folders,
"parquet" only as files. Nothing here decodes an image.
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import importlib.resources
import os
import re
import socket
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from simclr_core.data.cache import require_writable_folder
from simclr_core.data.catalog import BACKGROUND_COUNTED_AS_CLASS, DatasetSpec, dataset_spec
from simclr_core.data.folder_memo import RACY_MTIME_S, from_folders
from simclr_core.data.hf_freshness import load_current
from simclr_core.validation import ConfigError

DATA_DIR_ENV = "SIMCLR_DATA_DIR"
# Datasets never read from class folders: "parquet" is named by its files, the embedded subset is parquet files.
_FILES_ONLY = ("parquet", "cifar10_subset")
HUB_PROBE_TIMEOUT_S = 3.0
# WebDataset tar shards (key.jpg + key.cls per sample) are read by `datasets`' "webdataset" builder on the
# resident path and by encoded.TarSplit on the streamed one.
_FORMATS = {".parquet": "parquet", ".arrow": "arrow", ".tar": "webdataset"}
# A Hub folder's split names as `datasets` reports them (a folder called "val" becomes "validation").
_HUB_SPLIT = {"val": "validation"}
# A file written within RACY_MTIME_S may be rewritten keeping size and mtime: the ends of its content join its
# fingerprint.
_RACY_SAMPLE_BYTES = 1 << 20


class DataNotFoundError(FileNotFoundError):
    """No local files for a dataset split and the Hub cannot provide it; the message says where we looked and
    how to provide the data."""


@dataclass(frozen=True)
class Source:
    """One split of one dataset: local files, a saved dataset, an image folder, or a Hub id."""
    dataset: str  # our name, e.g. "cifar10"
    kind: str  # "files" | "disk" | "imagefolder" | "hub"
    location: str  # file format ("parquet"/"arrow"), folder, or Hub id
    split: str  # the split's name in the source ("validation" for ImageNet's test)
    files: tuple[str, ...] = ()  # the files whose path, size and mtime identify the content
    looked_at: tuple[str, ...] = field(default=(), compare=False)  # for the error message

    def content_identity(self) -> str:
        """Which images these are, wherever they lie: a hash of each file's name below the split's folder and its
        size (no path of one machine, no mtime), so that a copy elsewhere has the same identity and another
        folder of the same kind another one."""
        if self.kind == "hub":
            return f"hub:{self.location}:{self.split}"
        files = self.listed_files()
        # The paths' common folder is that of the first and last in text order: those between share their prefix.
        common = os.path.commonpath((min(files), max(files))) if files else ""
        below = common.rstrip(os.sep) + os.sep     # os.path.relpath's answer for the paths below it, 17x cheaper
        digest = hashlib.sha256(f"{self.kind}:{self.split}".encode())
        for path in sorted(files):
            relative = path[len(below):] if path.startswith(below) else os.path.relpath(path, common)
            digest.update(_text_bytes(f"\n{relative}\0{_stat(path).st_size}"))
        return digest.hexdigest()[:16]

    def fingerprint(self) -> str:
        """Stable text that changes when the content may have changed (path + size + mtime of each file, and the
        first and last MiB of a file modified in the last RACY_MTIME_S: the same content then has another
        fingerprint once the file is older, which costs one more decode, never a stale one)."""
        if self.kind == "hub":
            return f"hub:{self.location}:{self.split}"
        digest = hashlib.sha256(_text_bytes(f"{self.kind}:{self.location}:{self.split}"))
        now = time.time()
        for path in self.listed_files():
            stat = _stat(path)
            digest.update(_text_bytes(f"\n{path}\0{stat.st_size}\0{stat.st_mtime_ns}"))
            if abs(now - stat.st_mtime) < RACY_MTIME_S and os.path.exists(path):
                with open(path, "rb") as f:
                    digest.update(f.read(_RACY_SAMPLE_BYTES))
                    f.seek(max(stat.st_size - _RACY_SAMPLE_BYTES, _RACY_SAMPLE_BYTES))
                    digest.update(f.read(_RACY_SAMPLE_BYTES))
        return digest.hexdigest()

    def listed_files(self) -> tuple[str, ...]:
        """`files`; for an image folder, every file under it (all splits), listed when asked (folder_files)."""
        return folder_files(Path(self.location)) if self.kind == "imagefolder" else self.files

    def describe(self) -> str:
        if self.kind == "files":
            folder = Path(self.files[0]).parent
            where = self.files[0] if len(self.files) == 1 else f"{len(self.files)} files in {folder}"
            return f"{where} ({self.location})"
        return f"{self.kind} {self.location} split {self.split!r}"

    def require_available(self) -> None:
        """DataNotFoundError (as `load` words it) unless this split can be opened: local files are there by
        construction; a Hub split needs the Hub reachable (the run downloads it) or a copy in the HF cache (opened
        here, memory-mapped: no image is read)."""
        if self.kind != "hub":
            return
        import datasets

        if not datasets.config.HF_HUB_OFFLINE and hub_unreachable() is None:
            return
        self.load()

    def require_opened(self) -> None:
        """DataNotFoundError (as `load` words it) unless this split opens: a Hub split is downloaded into the HF
        cache where it is not there yet (the run reads it from there). Under `downloads_left_to_the_run()`, a Hub
        split only needs what `require_available` asks: nothing is downloaded."""
        if self.kind == "hub" and _DOWNLOADS_LEFT_TO_THE_RUN.get():
            self.require_available()
        else:
            self.load()

    def count_rows(self) -> int:
        """The number of examples of a local split (parquet: from the files' footers; otherwise as `load` sees
        them, images still encoded)."""
        if self.kind == "files" and self.location == "parquet":
            import pyarrow.parquet as pq

            return sum(pq.ParquetFile(path).metadata.num_rows for path in self.files)
        return len(self.load())

    def _files_with_rows(self) -> list[str]:
        """`files`, less parquet shards without rows (`datasets` fails on them); ConfigError where none has any."""
        if self.location != "parquet":
            return list(self.files)
        import pyarrow.parquet as pq

        with_rows = [path for path in self.files if pq.ParquetFile(path).metadata.num_rows]
        if not with_rows:
            raise ConfigError(f"{self.describe()} holds no images: its parquet files have no rows")
        return with_rows

    def path_base(self) -> Path | None:
        """The folder a relative path stored in a row without the image's bytes is read from: that of the split's
        files (all in one folder), or the saved dataset's; None for the Hub and image folders."""
        if self.kind == "files" and self.files:
            return Path(self.files[0]).parent
        if self.kind == "disk":
            return Path(self.location)
        return None

    def require_hf_cache(self) -> None:
        """ConfigError unless Hugging Face's datasets cache can take the Arrow copy `load` makes of local files."""
        if self.kind in ("files", "imagefolder"):
            import datasets

            require_writable_folder(Path(datasets.config.HF_DATASETS_CACHE),
                                    f"Hugging Face's Arrow copy of {self.describe()} to its datasets cache",
                                    "$HF_DATASETS_CACHE (or $HF_HOME)")

    def load(self):
        """The split as a `datasets.Dataset` (images still encoded)."""
        import datasets

        self.require_hf_cache()
        if self.kind == "files":
            files = self._files_with_rows()
            return load_current(lambda rebuild: datasets.load_dataset(
                self.location, data_files=files, split="train", **rebuild), self.fingerprint())
        if self.kind == "disk":
            return datasets.load_from_disk(self.location)
        if self.kind == "imagefolder":
            return load_current(lambda rebuild: datasets.load_dataset(
                "imagefolder", data_dir=self.location, split=self.split, **rebuild), self.fingerprint())
        offline = bool(datasets.config.HF_HUB_OFFLINE)
        unreachable = None if offline else hub_unreachable()
        try:
            with _hub_offline(unreachable is not None):
                return datasets.load_dataset(self.location, split=self.split)
        except (ConnectionError, FileNotFoundError) as exc:  # offline, unreachable, gated or unknown repo
            hub_id = f"Hub id {self.location!r} (split {self.split!r})"
            if unreachable:
                hub, detail = "Hub unreachable", (f"{hub_id}: the Hub took no connection ({unreachable}) and "
                                                  "the HF cache holds no copy.")
            elif offline:
                hub, detail = "HF offline mode", (f"{hub_id}: HF offline mode is on and the HF cache holds no "
                                                  f"copy ({type(exc).__name__}: {exc})")
            else:
                hub, detail = f"Hub: {type(exc).__name__}", f"{hub_id}: {type(exc).__name__}: {exc}"
            raise DataNotFoundError(_missing_message(self.dataset, self.location, self.split,
                                                     (*self.looked_at, hub), detail)) from exc


def _stat(path: str) -> os.stat_result:
    """os.stat; for a link whose target is gone, the link's own: its name is still part of what the folder holds
    (reading it fails, and is counted, where images are read)."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return os.lstat(path)


def _text_bytes(text: str) -> bytes:
    """UTF-8, keeping the bytes of a file name that is not (an archive's Latin-1 name) as they are on disk."""
    return text.encode("utf-8", "surrogateescape")


def locate_source(spec: DatasetSpec, data_dir: str | None, split: str) -> Source:
    """Find ``split`` of ``spec``: data_dir, then $SIMCLR_DATA_DIR/<name>, then the Hub (checked on load)."""
    names = spec.split_names(split)
    if spec.name == "cifar10_subset":
        root = Path(str(importlib.resources.files("simclr_core").joinpath("assets", "cifar10_subset")))
        found, why = _find_local(spec, root, names)
        if found is None:
            raise DataNotFoundError(f"the embedded CIFAR-10 subset is missing ({why}); "
                                    "regenerate it with: python scripts/make_embedded_subset.py")
        return found

    looked_at = []
    if data_dir is not None:
        found, why = _find_local(spec, Path(data_dir).expanduser(), names)
        if found is not None:
            return found
        raise DataNotFoundError(f"{spec.name}: no {names[0]!r} split found (data.data_dir={data_dir!r}: {why}): "
                                f"{_in_brief(spec.name, names[0])}\n" + _how_to_provide(spec.name))
    looked_at.append("data.data_dir not set")

    env_root = os.environ.get(DATA_DIR_ENV)
    if env_root:
        found, why = _find_local(spec, Path(env_root).expanduser() / spec.name, names)
        if found is not None:
            return found
        looked_at.append(f"${DATA_DIR_ENV}/{spec.name}: {why}")
    else:
        looked_at.append(f"${DATA_DIR_ENV} not set")

    if spec.hub_id is None:
        raise DataNotFoundError(_missing_message(spec.name, None, names[0], (*looked_at, "no Hub copy"), None))
    return Source(spec.name, "hub", spec.hub_id, names[0], looked_at=tuple(looked_at))


# ---- local files ---------------------------------------------------------------------------------
def _find_local(spec: DatasetSpec, path: Path, names: tuple[str, ...]) -> tuple[Source | None, str]:
    """(source, "") for the first split name with files under ``path``, else (None, why not)."""
    if path.is_file():
        if path.suffix in _FORMATS and any(_names_split(path, n) for n in names):
            return Source(spec.name, "files", _FORMATS[path.suffix], names[0], (str(path),)), ""
        return None, f"{path} is a file whose name mentions none of {names}"
    if not path.is_dir():
        return None, f"{path} does not exist"
    if spec.name == "imagefolder":
        for name in names:
            if (path / name).is_dir():
                split = _HUB_SPLIT.get(name, name)
                return Source(spec.name, "imagefolder", str(path), split), ""     # files: listed_files()
        return None, f"{path} has no image subfolder named {' or '.join(names)}"
    if spec.name in _FILES_ONLY:
        found = _found_files(spec, path, names)
        return (found, "") if found else (None, f"{path} has no {' / '.join(names)} .parquet/.arrow/.tar files"
                                                + _misnamed(path))
    # A split folder's class folders hold images: the search for files by name does not walk them (ImageNet's
    # 1.28 M training images would be listed at every look-up).
    class_folders = frozenset(os.path.join(split_dir, name) for split_dir in split_folders(spec, path).values()
                              for name in _subfolders(split_dir))
    found = _found_files(spec, path, names, class_folders)
    if found is None:
        name = next((n for n in names if _holds_images(path / n)), None)
        if name is None:
            return None, (f"{path} has no {' / '.join(names)} .parquet/.arrow/.tar files{_misnamed(path)} and no "
                          f"{' or '.join(f'{n}/' for n in names)} folder of class folders")
        require_labelled_folders(spec, path, name)
        found = Source(spec.name, "imagefolder", str(path), _HUB_SPLIT.get(name, name))   # files: listed_files()
    if class_folders:
        _require_one_layout(spec, path, found, class_folders)
    return found, ""


def _found_files(spec: DatasetSpec, path: Path, names: tuple[str, ...],
                 class_folders: frozenset[str] = frozenset()) -> Source | None:
    """The split's files under `path` (the first of `names` that has any; a saved dataset, else data files found by
    their names outside `class_folders`), or None."""
    for name in names:
        if (path / name / "state.json").is_file():  # Dataset.save_to_disk
            saved = path / name
            return Source(spec.name, "disk", str(saved), name, folder_files(saved))
        files = _split_files(path, name, class_folders)
        if files:
            return Source(spec.name, "files", _FORMATS[Path(files[0]).suffix], name, files)
    return None


def _require_one_layout(spec: DatasetSpec, path: Path, found: Source, class_folders: frozenset[str]) -> None:
    """ConfigError where `found` and the dataset's other split lie in two layouts, class folders and files: class
    folders number the classes in the sorted order of their names, files by the ids they store, so the two splits'
    labels could name other classes without a word."""
    def class_folder_split(names: tuple[str, ...]) -> Path | None:
        return next((path / n for n in names if (path / n).is_dir() and _subfolders(path / n)), None)

    mine, others = ((spec.split_names("train"), spec.test_split_names) if found.split == "train"
                    else (spec.test_split_names, spec.split_names("train")))
    other_files = _found_files(spec, path, others, class_folders)
    if found.kind == "imagefolder" and other_files is not None:
        folder, files = class_folder_split(mine), other_files
    elif found.kind != "imagefolder" and other_files is None and class_folder_split(others) is not None:
        folder, files = class_folder_split(others), found
    else:
        return
    raise ConfigError(f"{path} holds one split of {spec.name} as class folders ({folder}/) and the other as files "
                      f"({files.describe()}): class folders number the classes in the sorted order of their names, "
                      "files by the ids they store, so the splits' labels could disagree; give both splits in one "
                      "layout (move the other out of the folder)")


def split_folders(spec: DatasetSpec, root: Path) -> dict[str, Path]:
    """The folders under `root` named as a split of `spec` (train, then its test split's names), by name."""
    names = (*spec.split_names("train"), *spec.test_split_names)
    return {name: root / name for name in names if (root / name).is_dir()}


def _subfolders(folder: Path) -> list[str]:
    """The names of the folders in `folder` that are not hidden (a split's class folders); the entries' types as
    listed, so that ImageNet's thousand class folders cost no `stat` each."""
    with os.scandir(folder) as entries:
        return [e.name for e in entries if not e.name.startswith(".") and e.is_dir()]


def _loose_images(folder: Path) -> int:
    """How many image files lie directly in `folder` (in no class folder)."""
    from simclr_core.data.tar_index import IMAGE_SUFFIXES

    with os.scandir(folder) as entries:
        return sum(1 for e in entries if not e.name.startswith(".") and e.name.lower().endswith(IMAGE_SUFFIXES)
                   and e.is_file())


def _holds_images(folder: Path) -> bool:
    """Whether `folder` is a split of images: class folders, or images directly in it."""
    return folder.is_dir() and bool(_subfolders(folder) or _loose_images(folder))


def require_labelled_folders(spec: DatasetSpec, root: Path, split: str) -> None:
    """ConfigError, before anything is read, where the class folders of a named dataset's folder `root` cannot be
    its classes: another number of them than the dataset has (a wrong folder, a partial copy), or a split folder
    `split` whose images lie in it directly, in no class folder, while other splits have class folders (ILSVRC's
    flat val/). A folder without class folders in any split holds images without labels: those who need labels say
    so (protocols.require_classes)."""
    classes = folder_classes(root, spec.name)
    found = split_folders(spec, root)
    labelled = ", ".join(f"{n}/" for n, folder in found.items() if _subfolders(folder))
    if spec.num_classes is not None and classes and len(classes) != spec.num_classes:
        raise ConfigError(f"{root} holds {len(classes)} class folders (in {labelled}), and {spec.name} has "
                          f"{spec.num_classes} classes: {_why_classes_differ(spec, classes)}")
    split_dir = found[split]
    if classes and not _subfolders(split_dir):
        raise ConfigError(f"{split_dir} holds {_loose_images(split_dir):,} images directly, in no class folder, so "
                          f"they have no labels: {spec.name}'s {split!r} split needs class folders "
                          f"({split_dir}/<class>/<image>, named as those in {labelled})"
                          f"{class_folder_hint(spec.name)}")


def _why_classes_differ(spec: DatasetSpec, classes: list[str], count: int | None = None, by_folders: bool = True
                        ) -> str:
    """What a copy with `count` classes (by default those of its class folders `classes`) too many or too few for
    `spec` most likely is, and its fix; `by_folders`: the copy holds its classes as folders, else as labels."""
    background = BACKGROUND_COUNTED_AS_CLASS.get(spec.name)
    count = len(classes) if count is None else count
    if background is not None and background not in classes and count == spec.num_classes - 1:
        fix = (f"add {background} to each split" if by_folders else
               f"use a copy that keeps it, labelled as one of the {spec.num_classes} classes")
        return (f"the paper's transfer protocol (Kornblith et al. 2019) counts the background category among its "
                f"{spec.num_classes} classes: the official archive's folder {background}, which this copy lacks; "
                f"without it the copy is another dataset than the paper's: {fix}")
    if by_folders:
        return "a wrong folder or a partial copy; give the folder of a complete copy, one folder per class in each split"
    return "a wrong dataset or a partial copy; give a complete copy, labelled by the dataset's own classes"


def require_catalog_classes(spec: DatasetSpec, count: int, labels, classes: tuple[str, ...] | None,
                            where: str) -> None:
    """ConfigError where a labelled copy `where` of a named dataset holds another number of classes than the
    catalog's, as class folders are refused (require_labelled_folders): its label column declares `count` classes
    (a ClassLabel, or its class names `classes`), or, for a dataset that counts its background category as a class,
    its `labels` stop one short of the catalog's count (a copy without the background, as torchvision's
    Caltech-101 is). A run naming its own label column (data.label_column: CIFAR-100's 20 coarse classes) is held to
    no count: the catalog's is that of the dataset's own labels."""
    if spec.num_classes is None or spec.label_column is not None or not count:
        return
    said = f"its label column declares {count} classes"
    if count == spec.num_classes and spec.name in BACKGROUND_COUNTED_AS_CLASS and len(labels):
        count, said = int(labels.max()) + 1, f"its labels run from 0 to {int(labels.max())}"
    if count != spec.num_classes:
        raise ConfigError(f"{where}: {said}, and {spec.name} has {spec.num_classes} classes: "
                          f"{_why_classes_differ(spec, list(classes or ()), count, by_folders=False)}")


def class_folder_hint(dataset: str) -> str:
    """How the usual download of `dataset` is sorted into class folders ("" where there is no usual way)."""
    if dataset == "imagenet":
        return ("; ILSVRC2012's val/ comes flat and is sorted into class folders by the widely used valprep.sh "
                "(github.com/soumith/imagenetloader.torch)")
    return ""


def _misnamed(path: Path, shown: int = 3) -> str:
    """" (it holds a.parquet, ...: ...)": the data files under `path`, none of which names the split looked for,
    for the error that says so ("" where it holds none)."""
    found = []
    for folder, files, _ in walk_folders(path):
        found += sorted(os.path.relpath(os.path.join(folder, f), path) for f in files if Path(f).suffix in _FORMATS)
        if len(found) > shown:
            break
    if not found:
        return ""
    more = ", ..." if len(found) > shown else ""
    return (f" (it holds {', '.join(found[:shown])}{more}: a split's files are found by its name, e.g. "
            "train.parquet, test-00000-of-00001.parquet or train/part-0.parquet)")


def _names_split(path: Path, name: str) -> bool:
    """`train.parquet`, `train-00000-of-00002.parquet`, `cifar10-train.arrow` or `train/part-0.parquet`."""
    return name in re.split(r"[-_.]", path.stem.lower()) or path.parent.name.lower() == name


def _split_files(root: Path, name: str, leave_out: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """Parquet (else arrow) files of split ``name`` under ``root``, all in one folder, in shard order; the folders
    `leave_out` (paths) are not walked."""
    found: dict[str, list[Path]] = {}
    for folder, files, _ in walk_folders(root, leave_out=leave_out):
        for file in files:
            path = Path(folder) / file
            if path.suffix in _FORMATS and _names_split(path, name):
                found.setdefault(path.suffix, []).append(path)
    files = found.get(".parquet") or found.get(".arrow") or found.get(".tar") or []
    folders = sorted({str(p.parent) for p in files})
    if len(folders) > 1:
        raise ConfigError(f"several folders under {root} hold {name!r} files: {', '.join(folders)}; "
                          "set data.data_dir to the one to use")
    return tuple(sorted(str(p) for p in files))


def folder_classes(root: Path, dataset: str = "imagefolder") -> list[str]:
    """An image folder's class names: the class folders of all of its splits (the folders the catalog names a
    split of `dataset` by), sorted, so that a class has one label in every split, whichever classes a split lacks."""
    return sorted({name for split_dir in split_folders(dataset_spec(dataset), root).values()
                   for name in _subfolders(split_dir)})


def folder_files(root: Path) -> tuple[str, ...]:
    """Every file under `root`, sorted (following folder links once each, skipping hidden folders), listed once
    per process while no folder under it changes (folder_memo.py)."""
    def build():
        listing = list(walk_folders(root))
        files = tuple(sorted(str(Path(folder) / f) for folder, names, _ in listing for f in names))
        return files, [folder for folder, _, _ in listing]
    return from_folders(("folder_files", str(root)), build)


def walk_folders(root: Path, keep_out: Path | None = None, leave_out: frozenset[str] = frozenset()):
    """(folder, file names, folders not walked) under root, following folder links once each, skipping hidden
    folders and links back up to root or a folder above it (a cycle); with `keep_out`, also links into the rest of
    `keep_out` (from a class folder into the others of its split: their images would be read twice, under two labels).
    The folders `leave_out` (paths as the walk joins them) are not entered, nor listed as not walked."""
    top = os.path.realpath(root)
    fence = os.path.realpath(keep_out) if keep_out is not None else None
    seen = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        if leave_out:
            dirs[:] = [d for d in dirs if os.path.join(folder, d) not in leave_out]
        skipped = sorted(d for d in dirs if d.startswith(".") or _loops_back(os.path.join(folder, d), top, fence))
        dirs[:] = sorted(d for d in dirs if d not in skipped)
        yield folder, files, skipped


def _loops_back(path: str, top: str, fence: str | None) -> bool:
    """Whether `path`, a link, leads to `top` or above it, or (with `fence`) elsewhere inside `fence`."""
    if not os.path.islink(path):
        return False
    real = os.path.realpath(path)
    if _within(top, real):
        return True
    return fence is not None and _within(real, fence) and not _within(real, top)


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


# ---- the Hub -------------------------------------------------------------------------------------
_DOWNLOADS_LEFT_TO_THE_RUN = contextvars.ContextVar("downloads_left_to_the_run", default=False)


@contextlib.contextmanager
def downloads_left_to_the_run():
    """Checks inside the block download no Hub split (Source.require_opened): for a plan (`run --dry-run`), which
    must stay quick; the Hub's probe (hub_unreachable, a few seconds at most) still runs."""
    token = _DOWNLOADS_LEFT_TO_THE_RUN.set(True)
    try:
        yield
    finally:
        _DOWNLOADS_LEFT_TO_THE_RUN.reset(token)


def hub_unreachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """Why the Hub's host ($HF_ENDPOINT, else huggingface.co) takes no TCP connection within ``timeout`` s, or
    None when it does, or when a proxy is set (a direct connection proves nothing then)."""
    from huggingface_hub import constants  # its ENDPOINT: $HF_ENDPOINT as read at import, the one the client uses

    url = urllib.parse.urlsplit(constants.ENDPOINT)
    proxies = urllib.request.getproxies()
    if not url.hostname or proxies.get(url.scheme) or proxies.get("all"):
        return None
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(f"{host}:{port}: {exc}")

    # A thread, so that a name lookup that hangs (the socket timeout does not cover it) is bounded as well.
    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"{host}:{port}: no answer within {timeout:g} s"


@contextlib.contextmanager
def _hub_offline(enabled: bool):
    """`datasets` and `huggingface_hub` in offline mode for the block, so a copy in the HF cache still loads and
    a missing one fails at once. Both read their flag from the environment once, at import: it is set on them."""
    if not enabled:
        yield
        return
    import datasets
    from huggingface_hub import constants

    saved = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved


# ---- the error -----------------------------------------------------------------------------------
def _in_brief(name: str, split: str) -> str:
    """How to provide the split, in one line (terminals show an error's first line)."""
    where = f"{split}/<class>/<image>" if name == "imagefolder" else f"{split}.parquet"
    folders = "" if name in ("imagefolder", *_FILES_ONLY) else f" (or class folders: {split}/<class>/<image>)"
    return f"set data.data_dir=DIR with DIR/{where}, or ${DATA_DIR_ENV}=ROOT with ROOT/{name}/{where}{folders}"


def _how_to_provide(name: str) -> str:
    if name == "imagefolder":
        layout = "class folders under train/ and test/ (or val/), e.g. DIR/train/cat/0001.jpg"
    elif name in _FILES_ONLY:
        layout = ("train/test .parquet or .arrow files, Hub-style shards such as train-00000-of-00001.parquet, "
                  "or a Hub snapshot")
    else:
        spec = dataset_spec(name)
        tests = "/ or ".join(spec.test_split_names)
        layout = ("train/test .parquet or .arrow files, Hub-style shards such as train-00000-of-00001.parquet, "
                  f"a Hub snapshot, or class folders under train/ and {tests}/, e.g. DIR/train/<class>/0001.jpg "
                  "(files win where both are there)")
    return (f"Provide the data with the override data.data_dir=DIR (a folder holding {layout}), "
            f"or export {DATA_DIR_ENV}=ROOT with the files under ROOT/{name}/.")


def _missing_message(name: str, hub_id: str | None, split: str, looked_at: tuple[str, ...],
                     hub_detail: str | None) -> str:
    """First line: where we looked and how to provide the split, in brief; then the details."""
    lines = [f"{name}: no {split!r} split found ({'; '.join(looked_at)}): {_in_brief(name, split)}"]
    if hub_id is None:
        lines.append(f"{name!r} has no Hub id: its files must be local.")
    else:
        lines.append(hub_detail)
        lines.append("Offline (HF_DATASETS_OFFLINE=1 or HF_HUB_OFFLINE=1), the Hub copy must already be in the "
                     "HF cache. Download it once, online, with  "
                     f"python -c \"import datasets; datasets.load_dataset('{hub_id}')\"  or  "
                     f"hf download {hub_id} --repo-type dataset --local-dir ROOT/{name}  "
                     "(gated sets such as ImageNet need `hf auth login` first).")
    lines.append(_how_to_provide(name))
    return "\n".join(lines)
