"""Decoded splits on disk: <cache>/<dataset>-<split>-<key>.{images,labels}.npy + .json, written atomically;
and the index of a streamed split where building it is slow (tar shards): <cache>/<dataset>-<split>-<key>.index.npz.

The cache folder is $SIMCLR_CACHE_DIR, else ~/.cache/simclr_harness. The key hashes the source's fingerprint
(path + size + mtime of every file, or the Hub id), the image size and the subset, so a changed file or
setting decodes anew and an unchanged one never does. Each file is written under a temporary name, flushed to disk
and moved into place with os.replace, images last, so a reader sees a complete entry or none; a file lock lets one
process decode while the others (e.g. the ranks of one node) wait for its result. An entry whose files are cut short
anyway (written before they were flushed, or damaged since) is decoded again, with a warning naming it. An entry's
.json lists the images its decoding left out as unreadable (position, label, where and why: images.py), so that
the entry gives the same images, labels and subsets as decoding anew; an entry written before that list existed
holds every image of its rows (an unreadable one then stopped the decoding), so it is read as it is.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import uuid
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from filelock import FileLock

from simclr_core.atomic_files import nearest_existing
from simclr_core.validation import ConfigError

CACHE_DIR_ENV = "SIMCLR_CACHE_DIR"
# Bump when decoding changes (resize rule, layout), so entries made the old way are not reused. 2: 16-bit samples
# scaled to 8 bits (they were clamped).
CACHE_VERSION = 2


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "simclr_harness").expanduser()


class UnwritableFolderError(ConfigError):
    """A folder this process must write (a cache) cannot be written here; another machine may set its own."""


def require_writable_cache(what: str) -> None:
    """ConfigError, before anything is decoded, when our cache folder could not take `what`."""
    require_writable_folder(cache_dir(), f"{what} to the cache folder", f"${CACHE_DIR_ENV}")


def require_writable_folder(folder: Path, what: str, setting: str) -> None:
    """ConfigError "cannot write <what> <folder> (why); set <setting> to a writable folder" when `folder` could not
    be written (a read-only mount, missing permissions, a file in its path). Creates nothing: the folder, or its
    nearest existing parent, is asked (access(2) answers EROFS for a read-only mount, root included)."""
    existing = nearest_existing(folder)
    problem = (f"{existing} is not a folder" if not existing.is_dir() else
               f"{existing} is not writable" if not os.access(existing, os.W_OK | os.X_OK) else None)
    if problem:
        raise UnwritableFolderError(f"cannot write {what} {folder} ({problem}); set {setting} to a writable folder")


@dataclass(frozen=True)
class CachedSplit:
    stem: Path

    @classmethod
    def for_key(cls, dataset: str, split: str, *parts: Any) -> "CachedSplit":
        digest = hashlib.sha256(json.dumps([CACHE_VERSION, *parts]).encode()).hexdigest()[:16]
        return cls(cache_dir() / f"{dataset}-{split}-{digest}")

    @property
    def images_path(self) -> Path:
        return self.stem.with_name(self.stem.name + ".images.npy")

    @property
    def labels_path(self) -> Path:
        return self.stem.with_name(self.stem.name + ".labels.npy")

    @property
    def meta_path(self) -> Path:
        return self.stem.with_name(self.stem.name + ".json")

    def lock(self) -> FileLock:
        self.stem.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.stem) + ".lock")

    def present(self) -> bool:
        return self.images_path.is_file() and self.labels_path.is_file() and self.meta_path.is_file()

    def exists(self) -> bool:
        """A complete entry: its three files present and whole (a damaged one is decoded again: `problem`)."""
        return self.present() and self.problem() is None

    def problem(self) -> str | None:
        """Why the entry's files cannot be read whole (a file cut short or emptied by a power loss or a full disk),
        or None. Reads the .npy headers and compares the sizes they promise; the images are not read."""
        try:
            images = _npy_shape(self.images_path)
            labels = _npy_shape(self.labels_path)
            meta = _json_of(self.meta_path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            return f"{exc}"
        if len(images) != 4 or len(labels) != 1 or images[0] != labels[0]:
            return f"{self.images_path.name} holds {images} images and {self.labels_path.name} {labels} labels"
        if not isinstance(meta, dict) or "num_classes" not in meta:
            return f"{self.meta_path.name} has no num_classes"
        return None

    def read(self, mmap: bool = False) -> tuple[np.ndarray, np.ndarray, dict]:
        """(images (N, 3, S, S) uint8, labels (N,) int64, metadata); mmap=True maps the images read-only."""
        images = np.load(self.images_path, mmap_mode="r" if mmap else None)
        return images, np.load(self.labels_path), json.loads(self.meta_path.read_text())

    def write(self, decode: Callable[[Callable[[tuple[int, ...]], np.ndarray]],
                                     tuple[np.ndarray, np.ndarray, dict]]) -> None:
        """Store what ``decode(allocate)`` returns: (images, labels, meta), the images decoded straight into a
        memory-mapped temporary file that ``allocate(shape)`` makes (so a split larger than memory can be
        decoded). The images may be the first rows of that array only (images left out as unreadable): the file
        is then cut to them."""
        self.stem.parent.mkdir(parents=True, exist_ok=True)
        tag = f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp_images = self.images_path.with_name(self.images_path.name + tag)
        try:
            mapped, labels, meta = decode(lambda shape: _reserved_memmap(tmp_images, shape))
            rows = len(mapped)
            mapped.flush()
            del mapped
            if rows != _npy_shape(tmp_images)[0]:
                _keep_first_rows(tmp_images, rows)
            _sync(tmp_images)         # on disk before its name is: a power loss then leaves the old entry or none
            self._replace(self.labels_path, lambda f: np.save(f, labels), tag)
            self._replace(self.meta_path, lambda f: f.write(json.dumps(meta, indent=1).encode()), tag)
            os.replace(tmp_images, self.images_path)
        finally:
            tmp_images.unlink(missing_ok=True)

    @staticmethod
    def _replace(path: Path, write: Callable, tag: str) -> None:
        tmp = path.with_name(path.name + tag)
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def _sync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _json_of(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except ValueError as exc:            # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path.name} is not valid JSON: {exc}") from exc


def _npy_shape(path: Path) -> tuple[int, ...]:
    """The shape a .npy file's header declares; ValueError when the file is shorter than the header promises."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            shape, _, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                               else np.lib.format.read_array_header_2_0(f))
        except ValueError as exc:
            raise ValueError(f"{path.name} has no readable header: {exc}") from exc
        expected = f.tell() + int(np.prod(shape)) * dtype.itemsize
    if size < expected:
        raise ValueError(f"{path.name} is cut short ({size:,} bytes of {expected:,})")
    return tuple(shape)


def _keep_first_rows(path: Path, rows: int) -> None:
    """Cut a .npy file of a C-ordered array to its first `rows` rows: its header rewritten in place at the same length
    (a smaller first dimension never needs more characters), the file truncated after those rows."""
    with open(path, "r+b") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        data_start = f.tell()
        length_bytes = 2 if version == (1, 0) else 4
        header_start = 6 + 2 + length_bytes           # magic string, version, header length
        new_shape = (rows, *shape[1:])
        header = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": fortran, "shape": new_shape})
        space = data_start - header_start
        if fortran or len(header) + 1 > space:
            raise ValueError(f"{path.name}: cannot cut a {shape} array to {rows} rows in place")
        f.seek(header_start)
        f.write((header + " " * (space - len(header) - 1) + "\n").encode("latin1"))
        f.truncate(data_start + rows * int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize)


def _reserved_memmap(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """A new .npy of uint8 `shape` mapped for writing, its disk blocks reserved first. Writing into a mapped file
    that the disk cannot hold kills the process with SIGBUS, with no message and the run left 'running'; a
    reservation that does not fit is one error naming the folder and the sizes instead."""
    mapped = np.lib.format.open_memmap(path, "w+", np.uint8, shape)
    if hasattr(os, "posix_fallocate"):
        size = path.stat().st_size
        try:
            with open(path, "r+b") as f:
                os.posix_fallocate(f.fileno(), 0, size)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            del mapped
            free = shutil.disk_usage(path.parent).free
            raise ConfigError(f"the decoded images need {size / 2**20:,.1f} MiB in the cache folder {path.parent}, "
                              f"which has {free / 2**20:,.1f} MiB free ({exc.strerror}): free space there, or set "
                              f"${CACHE_DIR_ENV} to a folder on a larger disk") from None
    return mapped


@dataclass(frozen=True)
class CachedIndex:
    """Named arrays (an index of encoded images) in one .npz file, keyed like CachedSplit, written atomically."""
    path: Path

    @classmethod
    def for_key(cls, dataset: str, split: str, *parts: Any) -> "CachedIndex":
        stem = CachedSplit.for_key(dataset, split, *parts).stem
        return cls(stem.with_name(stem.name + ".index.npz"))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Held while the index is built, so that one process builds it; where the cache folder cannot be
        written, no lock (write() then says the index is not kept)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            held = FileLock(str(self.path) + ".lock")
            held.acquire()
        except OSError:
            yield
            return
        try:
            yield
        finally:
            held.release()

    def read(self) -> dict[str, np.ndarray] | None:
        """The arrays, or None when there is no complete entry (a damaged one is rebuilt, not trusted)."""
        try:
            with np.load(self.path, allow_pickle=False) as stored:
                return {name: stored[name] for name in stored.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
            return None

    def write(self, arrays: dict[str, np.ndarray]) -> None:
        """Store the arrays; where the disk refuses (full, read-only), warn and go on: the index in memory serves
        this run, and the next one builds it again."""
        tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            warnings.warn(f"simclr_core: could not cache the index in {self.path} ({exc.strerror or exc}); this run "
                          f"uses it from memory, the next one builds it again (set ${CACHE_DIR_ENV} to a writable "
                          f"folder with space to keep it)", stacklevel=2)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
