"""Datasets by name: the embedded CIFAR-10 subset, local layouts, the decode cache, limits and errors."""
from __future__ import annotations

import io
import os
import re
import time
from dataclasses import replace
from pathlib import Path

import datasets
import huggingface_hub
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from simclr_core.config import DataConfig, RunConfig
from simclr_core.data import (DATASETS, DataNotFoundError, balanced_subset, dataset_spec, load_images,
                              native_image_size)
from simclr_core.data import decode as decode_module
from simclr_core.data.decode import fit_square
from simclr_core.data.encoded import SIZE_SAMPLE
from simclr_core.data.feed import require_data, view_side
from simclr_core.data.locate import locate_source
from simclr_core.validation import ConfigError

REPO = Path(__file__).resolve().parents[2]
# The full CIFAR-10 parquet files: $SIMCLR_DATA_DIR/cifar10, else ../shared/data/cifar10 beside the repository.
SHARED = (Path(os.environ["SIMCLR_DATA_DIR"]) if os.environ.get("SIMCLR_DATA_DIR")
          else REPO.parent / "shared" / "data") / "cifar10"
ASSETS = REPO / "simclr_core" / "assets" / "cifar10_subset"
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} (full CIFAR-10 parquet) is missing")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SIMCLR_DATA_DIR", raising=False)


@pytest.fixture(scope="module")
def subset_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("subset_cache")


@pytest.fixture(scope="module")
def subset(subset_cache):
    """Both splits of the embedded subset, decoded once for the module into its own cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SIMCLR_CACHE_DIR", str(subset_cache))
        return {split: load_images(DataConfig(), split) for split in ("train", "test")}


def decoded(cache) -> list:
    """The decoded splits in a cache folder (which may also hold the indexes of image folders: no decoding)."""
    return sorted(cache.rglob("*.npy")) if cache.exists() else []

def _pil_decode(data: bytes) -> np.ndarray:
    """Independent reference: PIL, HWC -> CHW."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).transpose(2, 0, 1)


def _write_parquet(path: Path, images: list[np.ndarray], labels: list[int], fmt: str = "PNG",
                   names: list[str] | None = None) -> None:
    """A small parquet file in the Hub layout (Image + ClassLabel) from HWC uint8 arrays."""
    def encode(array):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format=fmt)
        return {"bytes": buffer.getvalue(), "path": None}

    names = names or [f"c{i}" for i in range(max(labels) + 1)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict({"image": [encode(a) for a in images], "label": labels}, features=features
                               ).to_parquet(str(path))


def _channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images as fractions of 255 (float64, in chunks to bound memory)."""
    total, squares, count = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), 0
    for chunk in images.split(4096):
        pixels = chunk.double() / 255
        total += pixels.sum(dim=(0, 2, 3))
        squares += pixels.square().sum(dim=(0, 2, 3))
        count += pixels[:, 0].numel()
    mean = total / count
    return mean, (squares / count - mean.square()).sqrt()


def _random_images(count: int, height: int, width: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


# ---- the embedded subset ---------------------------------------------------------------------------
def test_subset_shapes_dtypes_counts_balance(subset):
    for split, per_class in (("train", 500), ("test", 100)):
        s = subset[split]
        assert s.images.shape == (10 * per_class, 3, 32, 32) and s.images.dtype == torch.uint8
        assert s.labels.shape == (10 * per_class,) and s.labels.dtype == torch.int64
        assert s.num_classes == 10 and s.name == "cifar10_subset"
        assert s.labels.bincount(minlength=10).tolist() == [per_class] * 10
        assert (s.mean, s.std) == (dataset_spec("cifar10").mean, dataset_spec("cifar10").std)
        pixels = s.images.float()
        assert pixels.std() > 40  # real photographs, not a constant fill
        assert (pixels.flatten(1).std(dim=1) > 0).all()  # no blank image
        assert int(s.images.min()) == 0 and int(s.images.max()) == 255


def test_subset_is_shuffled_not_sorted_by_class(subset):
    labels = subset["train"].labels
    assert (labels[1:] != labels[:-1]).sum() > 3000  # ~4500 label changes when shuffled, 9 when sorted


def test_subset_statistics_are_cifar10s(subset):
    mean, std = _channel_stats(subset["train"].images)
    spec = dataset_spec("cifar10")
    torch.testing.assert_close(mean, torch.tensor(spec.mean, dtype=torch.float64), atol=0.01, rtol=0)
    torch.testing.assert_close(std, torch.tensor(spec.std, dtype=torch.float64), atol=0.01, rtol=0)


def test_subset_files_keep_the_hub_schema_and_fit_the_size_budget():
    for split in ("train", "test"):
        ds = datasets.load_dataset("parquet", data_files=str(ASSETS / f"{split}.parquet"), split="train")
        assert ds.features == datasets.Features({"img": datasets.Image(),
                                                 "label": datasets.ClassLabel(names=CIFAR10_NAMES)})
    assert sum(f.stat().st_size for f in ASSETS.glob("*.parquet")) < 6.5e6


@needs_shared
@pytest.mark.parametrize("split", ["train", "test"])
def test_subset_entries_are_the_original_images_and_labels(subset, split):
    original = pq.read_table(SHARED / f"{split}.parquet")
    original_images = original.column("img").combine_chunks()
    row_of = {p: i for i, p in enumerate(original_images.field("path").to_pylist())}
    mine = pq.read_table(ASSETS / f"{split}.parquet")
    mine_images = mine.column("img").combine_chunks()
    for i in (0, 1, 457, len(mine) - 1):
        row = row_of[mine_images.field("path")[i].as_py()]
        original_bytes = original_images.field("bytes")[row].as_py()
        assert mine_images.field("bytes")[i].as_py() == original_bytes  # not re-encoded
        assert mine.column("label")[i].as_py() == original.column("label")[row].as_py()
        assert int(subset[split].labels[i]) == original.column("label")[row].as_py()
        np.testing.assert_array_equal(subset[split].images[i].numpy(), _pil_decode(original_bytes))


# ---- limits ------------------------------------------------------------------------------------------
def test_balanced_subset_on_class_sorted_labels():
    labels = np.repeat(np.arange(10), 50)  # sorted by class, like the CIFAR files
    chosen = balanced_subset(labels, 20)
    assert np.bincount(labels[chosen], minlength=10).tolist() == [2] * 10
    assert np.array_equal(chosen, balanced_subset(labels, 20))  # deterministic
    assert not np.array_equal(chosen, balanced_subset(labels, 20, seed=1))  # seeded
    assert np.all(np.diff(chosen) > 0)  # sorted, no repeats
    counts = np.bincount(labels[balanced_subset(labels, 23)], minlength=10)
    assert counts.sum() == 23 and counts.max() - counts.min() == 1


def test_balanced_subset_fills_from_other_classes_when_one_runs_out():
    labels = np.array([0] * 2 + [1] * 30 + [2] * 30)
    counts = np.bincount(labels[balanced_subset(labels, 20)], minlength=3)
    assert counts.tolist() == [2, 9, 9]
    with pytest.raises(ConfigError, match="exceeds the 62"):
        balanced_subset(labels, 63)


def test_train_limit_is_balanced_deterministic_and_matches_the_full_split(subset, subset_cache, tmp_path,
                                                                           monkeypatch):
    full = subset["train"]
    limited = load_images(DataConfig(train_limit=1003), "train")  # decodes the 1003 images only
    counts = limited.labels.bincount(minlength=10)
    assert counts.sum() == 1003 and counts.max() - counts.min() == 1
    chosen = torch.from_numpy(balanced_subset(full.labels.numpy(), 1003))
    assert torch.equal(limited.labels, full.labels[chosen])
    assert torch.equal(limited.images, full.images[chosen])
    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "fresh"))
    assert torch.equal(load_images(DataConfig(train_limit=1003), "train").images, limited.images)
    # With the whole split cached, the limited set is cut from it without decoding.
    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(subset_cache))
    monkeypatch.setattr(decode_module, "decode_image", _must_not_be_called)
    assert torch.equal(load_images(DataConfig(train_limit=1003), "train").images, limited.images)


def _must_not_be_called(*args, **kwargs):
    raise AssertionError("decoded again instead of reading the cache")


def test_a_cache_too_small_for_the_images_is_one_error_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    def full_disk(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full_disk, raising=False)
    with pytest.raises(ConfigError, match=r"the decoded images need 0\.6 MiB in the cache folder .*cache, which "
                                          r"has [\d,.]+ MiB free \(No space left on device\): free space there, or "
                                          r"set \$SIMCLR_CACHE_DIR to a folder on a larger disk"):
        load_images(DataConfig(test_limit=200), "test")
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []


def test_a_cache_folder_that_cannot_be_written_is_refused_before_decoding(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "a-file" / "cache"))
    monkeypatch.setattr(decode_module, "decode_image", _must_not_be_called)
    with pytest.raises(ConfigError, match=r"cannot write the decoded images of cifar10_subset's train split to the "
                                          r"cache folder .*a-file/cache \(.*a-file is not a folder\); set "
                                          r"\$SIMCLR_CACHE_DIR to a writable folder"):
        require_data(DataConfig(), need_test=False)


def test_a_hugging_face_cache_that_cannot_be_written_is_refused_before_decoding(tmp_path, monkeypatch):
    # `datasets` copies local parquet files into its cache before anything can be decoded (a read-only $HOME on a
    # cluster node, say): the run failed after the pre-run check had passed.
    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "a-file" / "hf"))
    monkeypatch.setattr(decode_module, "decode_image", _must_not_be_called)
    with pytest.raises(ConfigError, match=r"cannot write Hugging Face's Arrow copy of .*train.parquet \(parquet\) to "
                                          r"its datasets cache .*a-file/hf \(.*a-file is not a folder\); set "
                                          r"\$HF_DATASETS_CACHE \(or \$HF_HOME\) to a writable folder"):
        require_data(DataConfig(), need_test=False)
    assert not decoded(tmp_path / "cache")


def test_a_full_cache_disk_is_an_error_not_a_sigbus(small_disk):
    # Writing into a mapped file that the disk cannot hold kills the process (SIGBUS, no message): on a real
    # full file system (a 1 MiB tmpfs), a subprocess must fail with the error.
    import subprocess
    import sys

    small = small_disk("1m")
    done = subprocess.run(
        [sys.executable, "-c", "from simclr_core.config import DataConfig; from simclr_core.data import "
         "load_images; load_images(DataConfig(), 'test')"],
        env={**os.environ, "SIMCLR_CACHE_DIR": str(small)}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])      # SIGBUS would be -7
    assert "ConfigError: the decoded images need 2.9 MiB in the cache folder" in done.stderr
    assert [p.name for p in small.iterdir() if not p.name.endswith(".lock")] == []


# ---- the cache ---------------------------------------------------------------------------------------
def test_second_load_reads_the_cache_and_never_decodes(tmp_path, monkeypatch):
    cfg = DataConfig(test_limit=200)
    first = load_images(cfg, "test")
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock"))
    assert len(cached) == 3 and not any(".tmp-" in name for name in cached)
    monkeypatch.setattr(decode_module, "decode_image", _must_not_be_called)
    monkeypatch.setattr(datasets, "load_dataset", _must_not_be_called)
    second = load_images(cfg, "test")
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    with pytest.raises(AssertionError, match="decoded again"):  # another image size is another entry
        load_images(DataConfig(test_limit=200, image_size=16), "test")


@pytest.mark.parametrize("damage", ["images emptied", "images cut short", "labels emptied", "meta emptied"])
def test_a_cache_entry_damaged_by_a_power_loss_is_decoded_again_with_one_warning(tmp_path, damage):
    # Every run failed on it ("EOFError: No data left in file", or an unexpected JSONDecodeError before any run
    # started) until the user found and deleted the file.
    cfg = DataConfig(test_limit=200)
    first = load_images(cfg, "test")
    which, how = damage.split(" ", 1)
    path = next((tmp_path / "cache").glob({"images": "*.images.npy", "labels": "*.labels.npy", "meta": "*.json"}[which]))
    path.write_bytes(b"" if how == "emptied" else path.read_bytes()[:1000])
    with pytest.warns(UserWarning, match=r"the decoded cache entry .*cifar10_subset-test-\w+ is damaged \(.+\), as a "
                                         r"power loss or a full disk can leave it: decoding the split again") as said:
        require_data(cfg, need_test=True)
        again = load_images(cfg, "test")
    assert len([w for w in said if "is damaged" in str(w.message)]) == 1
    assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)
    assert not [p for p in (tmp_path / "cache").iterdir() if ".tmp-" in p.name]


def test_changed_source_file_is_decoded_anew(tmp_path):
    folder = tmp_path / "data"
    _write_parquet(folder / "train.parquet", _random_images(4, 8, 8, seed=0), [0, 1, 0, 1])
    first = load_images(DataConfig(dataset="parquet", data_dir=str(folder)), "train")
    _write_parquet(folder / "train.parquet", _random_images(4, 8, 8, seed=1), [1, 1, 0, 0])
    second = load_images(DataConfig(dataset="parquet", data_dir=str(folder)), "train")
    assert second.labels.tolist() == [1, 1, 0, 0] and not torch.equal(first.images, second.images)


def test_a_file_rewritten_within_its_clocks_granularity_is_decoded_anew(tmp_path, monkeypatch):
    # FAT keeps mtimes to 2 s, HFS+ and ext3 to 1 s, exFAT to 10 ms: a file rewritten that soon with the same size
    # keeps size and mtime (here set back by hand, as such a clock leaves it; exFAT did it for real).
    path = tmp_path / "data" / "train.parquet"
    _write_parquet(path, _random_images(4, 8, 8, seed=0), [0, 1, 0, 1])
    written = os.stat(path)
    first = load_images(DataConfig(dataset="parquet", data_dir=str(path.parent)), "train")
    _write_parquet(path, _random_images(4, 8, 8, seed=1), [1, 1, 0, 0])
    assert os.stat(path).st_size == written.st_size
    os.utime(path, ns=(written.st_atime_ns, written.st_mtime_ns))
    second = load_images(DataConfig(dataset="parquet", data_dir=str(path.parent)), "train")
    assert second.labels.tolist() == [1, 1, 0, 0] and not torch.equal(first.images, second.images)
    # An older file is known by size and mtime alone: its content is not read to fingerprint it.
    hour_ago = time.time_ns() - 3600 * 10**9
    os.utime(path, ns=(hour_ago, hour_ago))
    source = locate_source(dataset_spec("parquet"), str(path.parent), "train")
    monkeypatch.setattr("builtins.open", lambda *args, **kwargs: pytest.fail(f"read {args[0]}"))
    assert source.fingerprint() == source.fingerprint()


def test_a_file_replaced_keeping_its_mtime_is_not_read_from_a_stale_hugging_face_copy(tmp_path, monkeypatch):
    # `datasets` knows a local file by its mtime alone; cp -p, rsync -a or tar x of another version keep it.
    path, hour_ago = tmp_path / "data" / "train.parquet", time.time_ns() - 3600 * 10**9
    modes = []
    real_load = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset",
                        lambda *a, **k: modes.append(k.get("download_mode")) or real_load(*a, **k))
    _write_parquet(path, _random_images(4, 8, 8, seed=0), [0, 1, 0, 1])
    os.utime(path, ns=(hour_ago, hour_ago))
    first = load_images(DataConfig(dataset="parquet", data_dir=str(path.parent)), "train")
    assert first.labels.tolist() == [0, 1, 0, 1]
    _write_parquet(path, _random_images(6, 8, 8, seed=1), [1, 1, 0, 0, 1, 0])
    os.utime(path, ns=(hour_ago, hour_ago))
    second = load_images(DataConfig(dataset="parquet", data_dir=str(path.parent)), "train")
    assert second.labels.tolist() == [1, 1, 0, 0, 1, 0]
    assert modes == [None, None, "force_redownload"]          # our cache missed (size), then HF rebuilt
    # Unchanged files: Hugging Face's copy is used as it is, even where our own cache misses (another size).
    modes.clear()
    again = load_images(DataConfig(dataset="parquet", data_dir=str(path.parent), image_size=16), "train")
    assert again.labels.tolist() == [1, 1, 0, 0, 1, 0] and modes == [None]


# ---- local layouts -------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["flat", "shards", "hub_snapshot", "env_root", "saved_to_disk", "single_file"])
def test_local_layouts(tmp_path, monkeypatch, layout):
    images, labels = _random_images(6, 8, 8, seed=2), [0, 1, 2, 0, 1, 2]
    root = tmp_path / "data"
    data_dir = str(root)
    if layout == "flat":
        _write_parquet(root / "train.parquet", images, labels)
    elif layout == "shards":
        _write_parquet(root / "train-00000-of-00002.parquet", images[:3], labels[:3])
        _write_parquet(root / "train-00001-of-00002.parquet", images[3:], labels[3:])
        _write_parquet(root / "test-00000-of-00001.parquet", images[:1], labels[:1])
    elif layout == "hub_snapshot":
        snapshot = root / "snapshots" / "abc123" / "plain_text"
        _write_parquet(snapshot / "train-00000-of-00001.parquet", images, labels)
    elif layout == "env_root":
        _write_parquet(root / "parquet" / "train.parquet", images, labels)
        monkeypatch.setenv("SIMCLR_DATA_DIR", str(root))
        data_dir = None
    elif layout == "saved_to_disk":
        _write_parquet(tmp_path / "tmp.parquet", images, labels)
        datasets.load_dataset("parquet", data_files=str(tmp_path / "tmp.parquet"), split="train"
                              ).save_to_disk(str(root / "train"))
    elif layout == "single_file":
        _write_parquet(root / "my_train.parquet", images, labels)
        data_dir = str(root / "my_train.parquet")
    loaded = load_images(DataConfig(dataset="parquet", data_dir=data_dir), "train")
    assert loaded.labels.tolist() == labels and loaded.num_classes == 3
    assert np.array_equal(loaded.images.numpy(), np.stack(images).transpose(0, 3, 1, 2))  # PNG is lossless
    assert loaded.mean == dataset_spec("imagenet").mean  # folders/parquet use ImageNet's statistics


def test_imagenet_test_split_is_validation_and_photos_are_resized_and_centre_cropped(tmp_path, monkeypatch):
    from simclr_core.data import catalog

    # a two-class stand-in: a copy whose labels declare other than the catalog's 1,000 classes is refused
    monkeypatch.setitem(catalog._SPECS, "imagenet", replace(catalog.dataset_spec("imagenet"), num_classes=2))
    photos = _random_images(4, 30, 45, seed=3)
    _write_parquet(tmp_path / "data" / "train-00000-of-00001.parquet", photos, [0, 1, 0, 1])
    _write_parquet(tmp_path / "data" / "validation-00000-of-00001.parquet", photos[:2], [1, 0])
    _write_parquet(tmp_path / "data" / "test-00000-of-00001.parquet", photos[:2], [0, 0])  # unlabelled on the Hub
    loaded = load_images(DataConfig(dataset="imagenet", data_dir=str(tmp_path / "data"), image_size=16), "test")
    assert loaded.labels.tolist() == [1, 0] and loaded.images.shape == (2, 3, 16, 16)
    # Reference: PIL's antialiased bilinear resize of the shorter side to round(16 * 8 / 7) = 18 (30 x 45 ->
    # 18 x 27), then the centre 16 x 16; torchvision's uint8 antialiased resize reproduces PIL exactly.
    reference = Image.fromarray(photos[0]).resize((27, 18), Image.BILINEAR).crop((6, 1, 22, 17))
    np.testing.assert_array_equal(loaded.images[0].numpy(), np.asarray(reference).transpose(2, 0, 1))


def test_fit_square_crops_the_centre_exactly():
    image = torch.arange(3 * 10 * 14, dtype=torch.int32).reshape(3, 10, 14).to(torch.uint8)
    torch.testing.assert_close(fit_square(image, 10), image[:, :, 2:12])  # shorter side already 10: crop only
    tall = image.transpose(1, 2)
    torch.testing.assert_close(fit_square(tall, 10), tall[:, 2:12, :])
    square = torch.randint(0, 256, (3, 20, 20), dtype=torch.uint8)
    assert fit_square(square, 20) is square
    upscaled = fit_square(torch.full((3, 4, 4), 7, dtype=torch.uint8), 12)  # CIFAR-style plain rescale
    assert upscaled.shape == (3, 12, 12) and bool((upscaled == 7).all())


def test_imagefolder(tmp_path):
    for split, count in (("train", 3), ("test", 2)):
        for label, name in enumerate(("cat", "dog")):
            folder = tmp_path / "folder" / split / name
            folder.mkdir(parents=True)
            for i, array in enumerate(_random_images(count, 20, 24, seed=10 * label + count)):
                Image.fromarray(array).save(folder / f"{i}.png")
    cfg = DataConfig(dataset="imagefolder", data_dir=str(tmp_path / "folder"), image_size=16)
    train, test = load_images(cfg, "train"), load_images(cfg, "test")
    assert train.images.shape == (6, 3, 16, 16) and test.images.shape == (4, 3, 16, 16)
    assert sorted(train.labels.tolist()) == [0, 0, 0, 1, 1, 1] and test.num_classes == 2


def _mixed_folder(root: Path, other_size_at: tuple[str, int] | None) -> Path:
    """Class folders (3 classes x 12 images, class-sorted) of 20 x 24 PNGs, one of them 30 x 24 where named."""
    for split in ("train", "test"):
        for label, name in enumerate(("ant", "bee", "cat")):
            (root / split / name).mkdir(parents=True)
            for i, array in enumerate(_random_images(12, 24, 20, seed=label)):
                if (name, i) == other_size_at and split == "train":
                    array = _random_images(1, 24, 30, seed=99)[0]
                Image.fromarray(array).save(root / split / name / f"{i:02d}.png")
    return root


def test_a_split_decoded_at_its_first_images_size_refuses_images_of_another_size(tmp_path):
    """Without data.image_size a folder or parquet split is decoded at its first image's size; an image of another
    size was squeezed to it, silently. Now one error names both images, before anything is decoded (the headers of
    a sample spread over the split) and, for what the sample misses, when decoding reaches it."""
    mixed = DataConfig(dataset="imagefolder", data_dir=str(_mixed_folder(tmp_path / "mixed", ("cat", 11))),
                       loader="resident")                                          # the last image differs
    message = (r"/mixed/train/ant/00.png is 20 x 24 px and \S+/mixed/train/cat/11.png is 30 x 24 px: without "
               r"data.image_size a split is decoded at its first image's size, so data.loader=resident needs images "
               r"of one size .* set data.image_size=N .* or data.loader=stream")
    with pytest.raises(ConfigError, match=message):
        require_data(mixed, need_test=True)
    assert not decoded(tmp_path / "cache")                       # nothing was decoded
    uniform = replace(mixed, data_dir=str(_mixed_folder(tmp_path / "uniform", None)))
    require_data(uniform, need_test=True)
    assert load_images(uniform, "train").images.shape == (36, 3, 20, 20)
    with pytest.raises(ConfigError, match=r"/mixed/train/ant/00.png.*is 20 x 24 px and .*/mixed/train/cat/11.png.* "
                                          r"is 30 x 24 px: without data.image_size"):
        load_images(mixed, "train")
    for fine in (replace(mixed, image_size=16), replace(mixed, loader="stream")):
        require_data(fine, need_test=True)
    assert load_images(replace(mixed, image_size=16), "train").images.shape == (36, 3, 16, 16)
    # an image the sample does not reach is refused when decoding reaches it
    sampled = set(np.linspace(0, 35, SIZE_SAMPLE).round().astype(int).tolist())
    unsampled = min(set(range(12)) - sampled)
    missed = replace(uniform, data_dir=str(_mixed_folder(tmp_path / "missed", ("ant", unsampled))))
    require_data(missed, need_test=True)
    with pytest.raises(ConfigError, match=rf"/missed/train/ant/{unsampled:02d}.png.* is 30 x 24 px: without data"):
        load_images(missed, "train")


def test_a_test_split_of_another_size_than_the_train_split_is_refused_where_each_is_decoded_at_its_own(tmp_path,
                                                                                                       monkeypatch):
    """Without data.image_size each split is decoded at its first image's size: a test split of 40 px images was
    evaluated with an encoder trained on 20 px views, without a word."""
    from simclr_core.data.feed import open_feed

    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))
    root = _mixed_folder(tmp_path / "two", None)
    for path in sorted((root / "test").rglob("*.png")):
        Image.open(path).resize((48, 40)).save(path)
    cfg = DataConfig(dataset="imagefolder", data_dir=str(root), loader="resident", train_limit=None, test_limit=None)
    message = (r"^the train split decodes at 20 px \(\S+/two/train/ant/00.png\) and the test split at 40 px "
               r"\(\S+/two/test/ant/00.png\): without data.image_size each split is decoded at its first image's size.* "
               r"set data.image_size=N .* or data.loader=stream$")
    with pytest.raises(ConfigError, match=message):
        require_data(cfg, need_test=True)
    require_data(cfg, need_test=False)                     # pretraining alone reads the train split only
    for fine in (replace(cfg, image_size=16), replace(cfg, loader="stream")):
        require_data(fine, need_test=True)
    # decoded already (the header check reads no source then): the feed compares what it decoded
    load_images(cfg, "train"), load_images(cfg, "test")
    with pytest.raises(ConfigError, match=r"^the train split decodes at 20 px \(imagefolder .*\) and the test split "
                                          r"at 40 px \(imagefolder "):
        open_feed(cfg, need_test=True)
    assert open_feed(replace(cfg, image_size=16), need_test=True).test_eval.shape[-1] == 16


def test_decoding_at_a_size_larger_than_the_images_says_they_were_upscaled(tmp_path, monkeypatch, recwarn):
    """The streamed path counts images smaller than a view (images_smaller_than_view); the resident path upscaled a
    folder of 20 px images to data.image_size=224, as the mixed-sizes error suggests for photographs, silently."""
    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))
    uniform = DataConfig(dataset="imagefolder", data_dir=str(_mixed_folder(tmp_path / "uniform", None)),
                         loader="resident", train_limit=None, test_limit=None)
    assert load_images(replace(uniform, image_size=16), "train").images.shape[-1] == 16
    assert not [w for w in recwarn if "upscaled" in str(w.message)]
    with pytest.warns(UserWarning, match=r"^36 of the 36 images are smaller than data.image_size=32 px \(the smallest: "
                                         r".*/uniform/train/ant/00.png.*, 20 x 24 px\): they were upscaled to it$"):
        assert load_images(replace(uniform, image_size=32), "train").images.shape[-1] == 32


def test_view_side_is_known_before_decoding_a_resident_folder_at_its_first_images_size(tmp_path):
    """What plans (time, memory, the CIFAR stem's note) assume: a resident folder of 20 x 24 images trains on 20 px
    views, not on the streamed path's 224."""
    folder = str(_mixed_folder(tmp_path / "uniform", None))
    resident = DataConfig(dataset="imagefolder", data_dir=folder, loader="resident")
    assert view_side(resident) == 20
    assert view_side(replace(resident, loader="stream")) == view_side(replace(resident, loader="auto")) == 224
    assert view_side(replace(resident, image_size=48)) == 48
    assert view_side(replace(resident, data_dir=str(tmp_path / "nowhere"))) == 224     # require_data names it
    assert view_side(DataConfig(dataset="cifar10", loader="resident")) == 32
    assert not decoded(tmp_path / "cache")                       # nothing was decoded
    assert load_images(resident, "train").images.shape[-1] == view_side(resident)


@pytest.mark.parametrize("loader", ["resident", "stream"])
def test_a_batch_larger_than_the_training_images_is_refused_before_the_run(tmp_path, loader):
    """train() refused it after decoding, so a registry grid recorded one failed run per point."""
    from simclr_core.train import check_inputs

    folder = str(_mixed_folder(tmp_path / "uniform", None))                     # 36 training images
    cfg = RunConfig(batch_size=48).with_overrides({"data.dataset": "imagefolder", "data.data_dir": folder,
                                                   "data.loader": loader, "data.test_limit": None,
                                                   "data.train_limit": None, "eval.protocols": ("knn",)})
    with pytest.raises(ConfigError, match=r"^batch_size=48 exceeds the 36 training images of 'imagefolder'; "
                                          r"choose batch_size <= 36$"):
        check_inputs(cfg)
    check_inputs(replace(cfg, batch_size=36))
    if loader == "resident":
        with pytest.raises(ConfigError, match="batch_size=36 exceeds the 20 training images"):
            check_inputs(cfg.with_overrides({"batch_size": 36, "data.train_limit": 20}))
    assert not decoded(tmp_path / "cache")                       # nothing was decoded


def test_the_pre_run_check_of_a_split_to_stream_builds_its_index_once(tmp_path, monkeypatch):
    """It was built twice per config (to find the split, then to count its images and classes): for parquet files
    of ImageNet's size, seconds each."""
    from simclr_core.data import encoded
    from simclr_core.train import check_inputs

    built = []
    monkeypatch.setattr(encoded, "open_folder", lambda *a, _open=encoded.open_folder: built.append(a) or _open(*a))
    folder = str(_mixed_folder(tmp_path / "uniform", None))
    cfg = RunConfig(batch_size=8).with_overrides({"data.dataset": "imagefolder", "data.data_dir": folder,
                                                  "data.loader": "stream", "data.train_limit": None,
                                                  "data.test_limit": None, "eval.protocols": ("knn",)})
    check_inputs(cfg)
    assert [source.split for _, source in built] == ["train", "test"]
    with pytest.raises(ConfigError, match="batch_size=48 exceeds the 36 training images"):
        check_inputs(replace(cfg, batch_size=48))          # the counts still come from that index


def _class_folders(root: Path, layout: dict[str, tuple[str, ...]], per_class: int = 4) -> str:
    for split, classes in layout.items():
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for i, array in enumerate(_random_images(per_class, 16, 16, seed=len(name))):
                Image.fromarray(array).save(root / split / name / f"{i}.png")
    return str(root)


@pytest.mark.parametrize("loader", ["resident", "stream"])
def test_a_class_has_one_label_in_every_split_of_an_image_folder(tmp_path, monkeypatch, loader):
    """The streamed path numbered each split's own class folders: with train/{ant,cat} and test/{ant,bee,cat},
    the training cats and the test bees were both label 1, so kNN and linear accuracies were silently wrong."""
    from simclr_core.data.feed import open_feed, warn_of_unseen_classes

    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))
    folder = _class_folders(tmp_path / "f", {"train": ("ant", "cat"), "test": ("ant", "bee", "cat")})
    cfg = DataConfig(dataset="imagefolder", data_dir=folder, loader=loader, train_limit=None, test_limit=None)
    with pytest.warns(UserWarning, match=r"^4 of the 12 test images \(imagefolder \S+ split 'test'\) have a label "
                                         r"that no training image has \(1; .*cannot classify them correctly"):
        feed = open_feed(cfg, need_test=True)
    assert feed.num_classes == 3
    assert feed.train_labels.tolist() == [0] * 4 + [2] * 4 and feed.test_labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    with pytest.warns(UserWarning) as said:          # a CIFAR subset too small to hold every class: ids, no folders
        warn_of_unseen_classes(torch.tensor([0, 1]), torch.tensor([0, 1, 7, 7]), "cifar10 subset")
    assert str(said[0].message).startswith("2 of the 4 test images (cifar10 subset) have a label that no training "
                                           "image has (7): kNN")


@pytest.mark.parametrize("layout", [("cat/indoor", "cat/outdoor", "dog/all"), ("cat/indoor", "dog")])
def test_both_paths_label_an_image_folder_by_its_class_folders_and_copy_nothing(tmp_path, monkeypatch, layout):
    """The resident path decoded a folder through Hugging Face's imagefolder, which builds an Arrow table of it in
    its cache first, labels an image by the folder directly above it (train/cat/indoor/0.png: "indoor") and drops all
    labels where images lie at different depths."""
    from simclr_core.data.feed import open_feed

    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf"))
    folder = _class_folders(tmp_path / "nested", {split: layout for split in ("train", "test")})
    cfg = DataConfig(dataset="imagefolder", data_dir=folder, loader="resident", train_limit=None, test_limit=None)
    per_class = [4 * sum(name.startswith(c) for name in layout) for c in ("cat", "dog")]
    expected = [0] * per_class[0] + [1] * per_class[1]
    for loader in ("resident", "stream"):
        feed = open_feed(replace(cfg, loader=loader), need_test=True)
        assert feed.num_classes == 2 and feed.train_labels.tolist() == feed.test_labels.tolist() == expected
    assert not (tmp_path / "hf").exists()
    assert load_images(replace(cfg, train_limit=4), "train").labels.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("loader", ["resident", "stream"])
@pytest.mark.parametrize("labels, row, shown", [([0, 1, 0, None, 1, 0], 3, "nan"),
                                                ([0.0, 1.0, 0.5, 1.0, 0.0, 1.0], 2, "0.5")])
def test_labels_that_are_no_class_ids_are_one_error_naming_the_row(tmp_path, monkeypatch, loader, labels, row, shown):
    """A missing label or a fraction would have been cast to a class id (class names are ids' equals:
    test_class_names.py)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from simclr_core.train import check_inputs

    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))
    for split in ("train", "test"):
        images = []
        for i, array in enumerate(_random_images(len(labels), 16, 16, seed=3)):
            encoded = io.BytesIO()
            Image.fromarray(array).save(encoded, format="PNG")
            images.append({"bytes": encoded.getvalue(), "path": f"{i}.png"})
        pq.write_table(pa.table({"image": images, "labels": labels}), tmp_path / f"{split}.parquet")
    cfg = RunConfig(batch_size=4).with_overrides({"data.dataset": "parquet", "data.data_dir": str(tmp_path),
                                                  "data.loader": loader, "data.train_limit": None,
                                                  "data.test_limit": None})
    with pytest.raises(ConfigError, match=rf"row {row} of \S+train.parquet.* has labels {shown}: labels must be "
                                          r"whole-number class ids \(0, 1, ...\) or, in every row, class names"):
        check_inputs(cfg)


def test_one_class_to_classify_is_refused_before_the_run_and_pretraining_alone_is_not(tmp_path):
    """kNN top-1 was 100.0 on a folder of one class (streamed), and decoding it ahead failed inside the run with
    "has none of the label columns": Hugging Face's imagefolder reads no labels from a single class folder."""
    from simclr_core.train import check_inputs

    for split in ("train", "test"):
        (tmp_path / "one" / split / "all").mkdir(parents=True)
        for i, array in enumerate(_random_images(8, 20, 20, seed=1)):
            Image.fromarray(array).save(tmp_path / "one" / split / "all" / f"{i}.png")
    cfg = RunConfig(batch_size=4).with_overrides({"data.dataset": "imagefolder", "data.data_dir": str(tmp_path / "one"),
                                                  "data.train_limit": None, "data.test_limit": None})
    with pytest.raises(ConfigError, match=r"^the training split of 'imagefolder' has 1 class, and knn would classify "
                                          r"its images: every accuracy would be 100%.* eval.protocols=none "
                                          r"eval.knn_every_epochs=0$"):
        check_inputs(cfg.with_overrides({"data.loader": "stream"}))
    with pytest.raises(ConfigError, match=r"^the training split of 'imagefolder' has 1 class, and knn would classify"):
        check_inputs(cfg.with_overrides({"data.loader": "resident"}))          # both paths count its class folders
    alone = cfg.with_overrides({"data.loader": "stream", "eval.protocols": None, "eval.knn_every_epochs": 0})
    assert alone.eval.protocols == ()                              # "none" on the command line: no protocol
    check_inputs(alone)
    with pytest.raises(ConfigError, match="has 1 class, and linear, the kNN monitor"):
        check_inputs(alone.with_overrides({"eval.protocols": "linear", "eval.knn_every_epochs": 1}))


# ---- errors and names ----------------------------------------------------------------------------------
def test_missing_data_names_what_was_tried_and_how_to_provide_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")
    monkeypatch.setenv("SIMCLR_DATA_DIR", str(tmp_path / "root"))
    with pytest.raises(DataNotFoundError) as error:
        load_images(DataConfig(dataset="cifar10"), "train")
    message = str(error.value)
    assert isinstance(error.value, FileNotFoundError)
    for needle in ("uoft-cs/cifar10", str(tmp_path / "root" / "cifar10"), "SIMCLR_DATA_DIR", "data.data_dir",
                   "HF_DATASETS_OFFLINE", "datasets.load_dataset('uoft-cs/cifar10')", "hf download"):
        assert needle in message, needle
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match=re.escape(str(tmp_path / "empty"))):
        load_images(DataConfig(dataset="cifar100", data_dir=str(tmp_path / "empty")), "test")
    with pytest.raises(DataNotFoundError, match="no Hub id"):
        load_images(DataConfig(dataset="parquet"), "train")


def test_unreachable_hub_fails_at_once_and_the_first_line_says_where_and_how(tmp_path, monkeypatch,
                                                                            empty_hf_cache):
    constants = huggingface_hub.constants
    monkeypatch.setenv("SIMCLR_DATA_DIR", str(tmp_path / "root"))
    started = time.perf_counter()
    with pytest.raises(DataNotFoundError) as error:
        load_images(DataConfig(dataset="cifar10"), "train")
    assert time.perf_counter() - started < 10  # no Hub retries (about 30 s)
    first, *rest = str(error.value).splitlines()
    for needle in ("cifar10", "'train'", "data.data_dir not set", str(tmp_path / "root" / "cifar10"),
                   "Hub unreachable", "data.data_dir=DIR", "SIMCLR_DATA_DIR=ROOT", "ROOT/cifar10/train.parquet"):
        assert needle in first, needle
    assert "127.0.0.1:9" in "\n".join(rest) and "uoft-cs/cifar10" in "\n".join(rest)
    assert datasets.config.HF_HUB_OFFLINE is False and constants.HF_HUB_OFFLINE is False  # restored


def test_unreachable_hub_still_loads_a_copy_from_the_hf_cache(monkeypatch, empty_hf_cache):
    constants = huggingface_hub.constants
    offline_during_load, real_load_dataset = [], datasets.load_dataset

    def cached_copy(path, split):  # stands in for a copy in the HF cache, which loads in offline mode
        offline_during_load.append((datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE))
        return real_load_dataset("parquet", data_files=str(ASSETS / f"{split}.parquet"), split="train")

    monkeypatch.setattr(datasets, "load_dataset", cached_copy)
    loaded = load_images(DataConfig(dataset="cifar10", test_limit=20), "test")
    assert offline_during_load == [(True, True)] and len(loaded) == 20
    assert datasets.config.HF_HUB_OFFLINE is False and constants.HF_HUB_OFFLINE is False


# ---- the check before runs start (registry: train.preflight) ----------------------------------------------
def test_require_data_finds_local_splits_without_decoding_and_names_a_missing_one(tmp_path):
    _write_parquet(tmp_path / "data" / "train.parquet", _random_images(3, 8, 8, seed=1), [0, 1, 0])
    for loader in ("resident", "stream"):
        cfg = DataConfig(dataset="parquet", data_dir=str(tmp_path / "data"), loader=loader)
        require_data(cfg, need_test=False)
        with pytest.raises(DataNotFoundError, match=r"no 'test' split found \(data.data_dir="):
            require_data(cfg, need_test=True)
    assert not decoded(tmp_path / "cache")                       # nothing was decoded


def test_require_data_refuses_a_limit_larger_than_its_split_before_anything_is_decoded(tmp_path, monkeypatch):
    from simclr_core.data.locate import Source

    _write_parquet(tmp_path / "data" / "train-0.parquet", _random_images(3, 8, 8, seed=1), [0, 1, 0])
    _write_parquet(tmp_path / "data" / "train-1.parquet", _random_images(2, 8, 8, seed=2), [1, 0])
    for split in ("train", "test"):
        folder = tmp_path / "folder" / split / "cat"
        folder.mkdir(parents=True)
        for i, array in enumerate(_random_images(4 if split == "train" else 3, 12, 10, seed=3)):
            Image.fromarray(array).save(folder / f"{i}.png")
    parquet = DataConfig(dataset="parquet", data_dir=str(tmp_path / "data"), loader="resident")
    require_data(replace(parquet, train_limit=5), need_test=False)               # both files' rows count
    with pytest.raises(ConfigError, match=r"^data.train_limit=6 does not fit the 5 examples .*valid values lie in "
                                          r"\[2, 5\]: override it with data.train_limit=N$"):
        require_data(replace(parquet, train_limit=6), need_test=False)
    folder = DataConfig(dataset="imagefolder", data_dir=str(tmp_path / "folder"), loader="resident")
    require_data(replace(folder, train_limit=4, test_limit=3), need_test=True)
    with pytest.raises(ConfigError, match=r"^data.test_limit=4 does not fit the 3 examples of split 'test'"):
        require_data(replace(folder, train_limit=4, test_limit=4), need_test=True)
    assert not decoded(tmp_path / "cache")                                      # nothing was decoded
    with pytest.raises(ConfigError, match=r"data.train_limit=9 does not fit the 5 examples"):
        load_images(replace(parquet, train_limit=9), "train")                     # as the run would say it

    load_images(parquet, "train")                                                 # the whole split, decoded
    monkeypatch.setattr(Source, "count_rows", _must_not_be_called)                # now counted from the cache
    require_data(replace(parquet, train_limit=4), need_test=False)
    with pytest.raises(ConfigError, match=r"data.train_limit=6 does not fit the 5 examples"):
        require_data(replace(parquet, train_limit=6), need_test=False)


def test_require_data_indexes_a_local_split_to_stream_and_names_what_it_lacks(tmp_path):
    empty = tmp_path / "folder" / "train" / "cat"
    empty.mkdir(parents=True)
    (empty / "notes.txt").write_text("no image here")
    with pytest.raises(ConfigError, match=r"folder/train holds no images \(.jpg.*e.g. .*/train/cat/0001.jpg"):
        require_data(DataConfig(dataset="imagefolder", data_dir=str(tmp_path / "folder")), need_test=False)

    _write_parquet(tmp_path / "data" / "train.parquet", _random_images(3, 8, 8, seed=1), [0, 1, 0])
    _write_parquet(tmp_path / "data" / "test.parquet", _random_images(2, 8, 8, seed=2), [1, 0])
    _set_column(tmp_path / "data" / "test.parquet", "label", [1, 5])
    cfg = DataConfig(dataset="parquet", data_dir=str(tmp_path / "data"), loader="stream")
    require_data(cfg, need_test=False)
    with pytest.raises(ConfigError, match=r"test.parquet.* has label 5, outside the 2 classes"):
        require_data(cfg, need_test=True)
    table = pq.read_table(tmp_path / "data" / "train.parquet")
    pq.write_table(table.drop(["label"]), tmp_path / "data" / "train.parquet")
    require_data(cfg, need_test=False)                 # a split without labels is pretrained on: test_unlabelled.py
    assert not decoded(tmp_path / "cache")                       # nothing was decoded


def test_require_data_refuses_a_hub_split_it_cannot_fetch(tmp_path, monkeypatch, empty_hf_cache):
    monkeypatch.setenv("SIMCLR_DATA_DIR", str(tmp_path / "root"))
    with pytest.raises(DataNotFoundError) as error:
        require_data(DataConfig(dataset="cifar10"), need_test=False)
    first = str(error.value).splitlines()[0]
    assert "no 'train' split found" in first and "Hub unreachable" in first and "SIMCLR_DATA_DIR=ROOT" in first


def test_require_data_leaves_a_reachable_hub_to_the_run(monkeypatch, empty_hf_cache):
    from simclr_core.data import locate

    monkeypatch.setattr(locate, "hub_unreachable", lambda timeout=0: None)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("the check must not download"))
    require_data(DataConfig(dataset="cifar10"), need_test=True)


def test_require_data_accepts_hub_splits_decoded_earlier_while_the_hub_is_unreachable(monkeypatch, empty_hf_cache):
    real_load_dataset = datasets.load_dataset

    def cached_copy(path, split):   # a copy in the HF cache, as in the test above
        return real_load_dataset("parquet", data_files=str(ASSETS / f"{split}.parquet"), split="train")

    monkeypatch.setattr(datasets, "load_dataset", cached_copy)
    cfg = DataConfig(dataset="cifar10", train_limit=20, test_limit=20)
    load_images(cfg, "train"), load_images(cfg, "test")          # decoded into the cache, keyed by the Hub id
    monkeypatch.setattr(datasets, "load_dataset", real_load_dataset)   # the HF cache is empty again
    require_data(cfg, need_test=True)                              # the run would read the decoded cache
    with pytest.raises(DataNotFoundError, match="Hub unreachable"):
        require_data(DataConfig(dataset="cifar10", train_limit=30), need_test=False)   # a subset not decoded yet
    with pytest.raises(DataNotFoundError, match="Hub unreachable"):
        require_data(DataConfig(dataset="cifar10", loader="stream", train_limit=20), need_test=False)  # reads the source


def _set_column(path: Path, column: str, values: list) -> None:
    """Overwrite one column of a parquet file, keeping its schema (and the `datasets` features stored in it)."""
    table = pq.read_table(path)
    index = table.schema.get_field_index(column)
    field = table.schema.field(index)
    pq.write_table(table.set_column(index, field, pa.array(values, type=field.type)), path)


@pytest.mark.parametrize("dataset, class_label, label, valid", [
    ("parquet", True, 1_000_000, "[0, 9] (column 'label' declares 10 classes)"),
    ("cifar10", False, 10, "[0, 9] (cifar10 has 10 classes)"),
    ("parquet", False, -1, ">= 0"),
])
def test_label_outside_the_known_classes_names_file_row_and_range(tmp_path, dataset, class_label, label, valid):
    path = tmp_path / "data" / "train.parquet"
    labels = [0, 1, 2, 3]
    if class_label:
        _write_parquet(path, _random_images(4, 8, 8, seed=4), labels, names=[f"c{i}" for i in range(10)])
    else:
        _write_plain_parquet(path, _random_images(4, 8, 8, seed=4), labels)
    _set_column(path, "label", [0, 1, label, 3])
    with pytest.raises(ConfigError) as error:
        load_images(DataConfig(dataset=dataset, data_dir=str(path.parent)), "train")
    message = str(error.value)
    for needle in (str(path), "row 2", f"label {label}", valid):
        assert needle in message, needle


def test_label_count_without_known_classes_is_the_largest_label_plus_one(tmp_path):
    path = tmp_path / "data" / "train.parquet"
    _write_plain_parquet(path, _random_images(3, 8, 8, seed=5), [0, 6, 2])
    assert load_images(DataConfig(dataset="parquet", data_dir=str(path.parent)), "train").num_classes == 7


def _write_plain_parquet(path: Path, images: list[np.ndarray], labels: list[int]) -> None:
    """Parquet without `datasets` features: an {bytes, path} struct and plain integer labels."""
    def encode(array):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        return {"bytes": buffer.getvalue(), "path": None}

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"image": [encode(a) for a in images], "label": pa.array(labels, pa.int64())}), path)


def test_data_dir_with_the_embedded_subset_is_rejected_naming_what_to_use():
    with pytest.raises(ConfigError) as error:
        RunConfig().with_overrides({"data.data_dir": "/nonexistent"}).validate()
    for needle in ("data.data_dir='/nonexistent'", "cifar10_subset", "embedded", "data.dataset=cifar10"):
        assert needle in str(error.value), needle
    RunConfig().with_overrides({"data.dataset": "cifar10", "data.data_dir": "/nonexistent"}).validate()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
@pytest.mark.parametrize("shards", [False, True])
def test_an_unreadable_image_is_left_out_with_a_warning_naming_file_row_and_path(tmp_path, damage, shards):
    images, labels = _random_images(4, 8, 8, seed=6), [0, 1, 0, 1]
    folder = tmp_path / "data"
    if shards:
        files = [folder / "train-00000-of-00002.parquet", folder / "train-00001-of-00002.parquet"]
        _write_parquet(files[0], images[:2], labels[:2], names=["a", "b"])
        _write_parquet(files[1], images[2:], labels[2:], names=["a", "b"])
    else:
        files = [folder / "train.parquet"]
        _write_parquet(files[0], images, labels, names=["a", "b"])
    bad = pq.read_table(files[-1]).column("image").to_pylist()
    good_bytes = bad[1]["bytes"]
    bad[1] = {"bytes": b"not an image" if damage == "garbage" else good_bytes[:len(good_bytes) // 2],
              "path": "b/0003.png"}
    _set_column(files[-1], "image", bad)
    with pytest.warns(UserWarning, match="unreadable image") as caught:
        held = load_images(DataConfig(dataset="parquet", data_dir=str(folder)), "train")
    message = next(str(w.message) for w in caught if "unreadable image" in str(w.message))
    for needle in (f"row 1 of {files[-1]}", "'b/0003.png'", "left out of the decoded split, with its label"):
        assert needle in message, needle
    kept = [row for row in range(4) if row != (3 if shards else 1)]     # the named row of the named file
    assert held.labels.tolist() == [labels[row] for row in kept]
    assert torch.equal(held.images, torch.from_numpy(np.stack([images[row] for row in kept])).permute(0, 3, 1, 2))


@pytest.mark.parametrize("split, key", [("train", "data.train_limit"), ("test", "data.test_limit")])
@pytest.mark.parametrize("whole_split_cached", [False, True])
def test_limit_beyond_the_split_names_the_key_value_split_and_source(tmp_path, split, key, whole_split_cached):
    path = tmp_path / "data" / f"{split}.parquet"
    _write_parquet(path, _random_images(5, 8, 8, seed=7), [0, 1, 0, 1, 0])
    if whole_split_cached:
        load_images(DataConfig(dataset="parquet", data_dir=str(path.parent)), split)
    limits = {"train_limit": 512} if split == "train" else {"test_limit": 512}
    with pytest.raises(ConfigError) as error:
        load_images(DataConfig(dataset="parquet", data_dir=str(path.parent), **limits), split)
    message = str(error.value)
    for needle in (f"{key}=512", "5 examples", f"split {split!r}", str(path), "[2, 5]"):
        assert needle in message, needle


def test_no_python_file_holds_an_absolute_path_to_the_shared_data():
    """The data lives beside the repository (../shared/data) or under $SIMCLR_DATA_DIR, never at one machine's
    absolute path."""
    absolute = re.compile(r"""["'](/[\w.-]+)+/shared/data""")
    found = [f"{path.relative_to(REPO)}:{number}"
             for path in REPO.rglob("*.py") if not any(p.startswith(".") for p in path.relative_to(REPO).parts)
             for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
             if absolute.search(line)]
    assert not found, found


def test_unknown_names_raise_config_errors_naming_the_choices():
    with pytest.raises(ConfigError) as error:
        load_images(DataConfig(dataset="mnist"), "train")
    assert all(repr(name) in str(error.value) for name in DATASETS)
    with pytest.raises(ConfigError, match="'train', 'test'"):
        load_images(DataConfig(), "validation")


def test_native_image_size():
    assert [native_image_size(n) for n in DATASETS] == [32, 32, 32, 96, 224, None, None]
    with pytest.raises(ConfigError):
        native_image_size("mnist")


# ---- the full CIFAR-10 ---------------------------------------------------------------------------------
@pytest.mark.full_data
@needs_shared
def test_full_cifar10_from_data_dir(capsys):
    cfg = DataConfig(dataset="cifar10", data_dir=str(SHARED))
    started = time.perf_counter()
    train, test = load_images(cfg, "train"), load_images(cfg, "test")
    decoded = time.perf_counter() - started
    started = time.perf_counter()
    again = load_images(cfg, "train"), load_images(cfg, "test")
    reloaded = time.perf_counter() - started
    with capsys.disabled():
        print(f"\nfull CIFAR-10: first load (decode 60k JPEGs) {decoded:.1f} s, cached reload {reloaded:.2f} s")
    assert train.images.shape == (50000, 3, 32, 32) and test.images.shape == (10000, 3, 32, 32)
    assert train.labels.bincount().tolist() == [5000] * 10 and test.labels.bincount().tolist() == [1000] * 10
    assert torch.equal(again[0].images, train.images) and torch.equal(again[1].labels, test.labels)
    # The catalogue's CIFAR-10 statistics, re-measured (the files are JPEG re-encodings: within 2e-3).
    mean, std = _channel_stats(train.images)
    spec = dataset_spec("cifar10")
    with capsys.disabled():
        print(f"measured mean {[round(v, 4) for v in mean.tolist()]}, std {[round(v, 4) for v in std.tolist()]}")
    torch.testing.assert_close(mean, torch.tensor(spec.mean, dtype=torch.float64), atol=2e-3, rtol=0)
    torch.testing.assert_close(std, torch.tensor(spec.std, dtype=torch.float64), atol=2e-3, rtol=0)


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_a_batch_of_a_split_held_in_host_memory_is_its_rows_on_the_device(device):
    """A resident split too large for the GPU stays in host memory; each batch's rows reach the device (on
    CUDA through page-locked memory gathered per batch)."""
    from simclr_core.data.feed import _rows_on

    images = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    rows = torch.tensor([7, 0, 7, 3])
    batches = [_rows_on(images, rows, torch.device(device)) for _ in range(3)]
    for batch in batches:
        assert batch.device.type == device and torch.equal(batch.cpu(), images[rows])


@pytest.mark.parametrize("loader", ["resident", "stream"])
def test_test_class_ids_beyond_the_training_splits_are_scored_not_a_failure_after_pretraining(tmp_path, monkeypatch,
                                                                                              loader):
    """Integer labels count their classes per split: a test split with ids 3 and 4, which no training image has,
    stopped kNN and linear evaluation after pretraining (its labels outside the training split's 3 classes)."""
    from image_rows import png_rows
    from simclr_core.train import train

    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table({"image": png_rows(12, 0), "label": [0, 1, 2] * 4}), data / "train.parquet")
    pq.write_table(pa.table({"image": png_rows(10, 1), "label": [0, 1, 2, 3, 4] * 2}), data / "test.parquet")
    cfg = RunConfig().with_overrides({
        "data.dataset": "parquet", "data.data_dir": str(data), "data.loader": loader, "data.image_size": 16,
        "data.train_limit": None, "data.test_limit": None, "encoder.width": 0.25, "batch_size": 4, "max_steps": 1,
        "eval.protocols": ("knn", "linear"), "eval.knn_k": 3, "eval.linear_epochs": 1, "eval.knn_every_epochs": 0})
    with pytest.warns(UserWarning, match=r"4 of the 10 test images .* have a label that no training image has \(3, 4\)"):
        metrics = train(cfg, tmp_path / "run")
    assert 0 <= metrics["knn_top1"] <= 60 and 0 <= metrics["linear_top1"] <= 60     # 4 of 10 cannot be right


@pytest.mark.parametrize("loader", ["resident", "stream"])
@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_a_row_holding_only_a_relative_path_is_read_below_the_splits_folder_from_any_directory(
        tmp_path, monkeypatch, loader, fmt):
    """The streamed parquet reader read such a path below the shard's folder, the resident path and arrow files below
    the directory the command ran in: from one holding files of the same names, other images, without a word."""
    from simclr_core.data.encoded import open_encoded

    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    red, blue = (np.zeros((8, 8, 3), np.uint8) for _ in range(2))
    red[..., 0], blue[..., 2] = 200, 200
    for folder, pixels in ((data, red), (elsewhere, blue)):
        folder.mkdir()
        for i in range(4):
            Image.fromarray(pixels).save(folder / f"{i}.png")
    table = pa.table({"image": [{"bytes": None, "path": f"{i}.png"} for i in range(4)], "label": [0, 1, 0, 1]})
    if fmt == "parquet":
        pq.write_table(table, data / "train.parquet")
    else:
        with pa.OSFile(str(data / "train.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    monkeypatch.chdir(elsewhere)
    cfg = DataConfig(dataset="parquet", data_dir=str(data), loader=loader, train_limit=None)
    if loader == "resident":
        images = load_images(cfg, "train").images
    else:
        split = open_encoded(cfg, "train")
        images = torch.stack([decode_module.decode_image(b, None) for b in split.read(range(4))])
    assert images[:, 0].float().mean() == 200 and images[:, 2].float().mean() == 0        # red: the split's own


@pytest.mark.parametrize("loader", ["resident", "stream"])
def test_a_shard_without_rows_adds_nothing_and_a_split_of_none_is_one_error(tmp_path, monkeypatch, loader):
    """`datasets` failed on a shard without rows (an unexpected failure of the resident path), whose columns pandas
    types as null (the streamed path then named no image column)."""
    import pandas as pd
    from simclr_core.data.feed import open_feed

    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf"))
    data = tmp_path / "data"
    _write_parquet(data / "train-00000-of-00002.parquet", _random_images(6, 8, 8, seed=1), [0, 1] * 3)
    pd.DataFrame({"image": [], "label": []}).to_parquet(data / "train-00001-of-00002.parquet")
    pq.write_table(pq.read_table(data / "train-00000-of-00002.parquet"), data / "test.parquet")
    cfg = DataConfig(dataset="parquet", data_dir=str(data), loader=loader, train_limit=None, test_limit=None)
    assert open_feed(cfg, need_test=True).train_labels.tolist() == [0, 1] * 3
    (data / "train-00000-of-00002.parquet").unlink()
    pd.DataFrame({"image": [], "label": []}).to_parquet(data / "train-00000-of-00001.parquet")
    (data / "train-00001-of-00002.parquet").unlink()
    with pytest.raises(ConfigError, match=r"holds no images"):
        open_feed(cfg, need_test=True)


def test_shards_keeping_their_images_in_different_columns_are_one_error_before_any_image_is_read(tmp_path):
    """The streamed index took the first shard's column for all: each image of the others was then unreadable
    during training, replaced one by one while under 1% of the images read."""
    from simclr_core.data.encoded import open_encoded

    data = tmp_path / "data"
    _write_parquet(data / "train-00000-of-00002.parquet", _random_images(4, 8, 8, seed=1), [0, 1] * 2)
    other = pq.read_table(data / "train-00000-of-00002.parquet").rename_columns(["img", "label"])
    pq.write_table(other, data / "train-00001-of-00002.parquet")
    with pytest.raises(ConfigError, match=r"train-00001-of-00002.parquet keeps its images in column 'img', \S+"
                                          r"train-00000-of-00002.parquet in 'image': the shards of a split must share"):
        open_encoded(DataConfig(dataset="parquet", data_dir=str(data)), "train")


@pytest.mark.parametrize("loader", ["resident", "stream"])
def test_sparse_class_ids_are_told_and_a_label_column_of_bytes_is_named_briefly(tmp_path, monkeypatch, loader):
    """Ids such as WordNet offsets (0 and 100,000 here) count max + 1 classes, which evaluation sizes its outputs
    by, without a word; a label column naming the image column printed the whole image into the error."""
    from image_rows import png_rows
    from simclr_core.data.feed import open_feed

    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf"))
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table({"image": png_rows(6, 0), "label": [0, 100_000] * 3}), data / "train.parquet")
    cfg = DataConfig(dataset="parquet", data_dir=str(data), loader=loader, train_limit=None)
    with pytest.warns(UserWarning, match=r"holds 2 distinct class ids up to 100,000 \(\D*row 1 of \S+train.parquet"
                                         r".*\), so evaluation scores over 100,001 classes .*renumber them 0..1"):
        assert open_feed(cfg, need_test=False).num_classes == 100_001
    with pytest.raises(ConfigError) as error:
        open_feed(replace(cfg, label_column="image"), need_test=False)
    assert "has image {'bytes': b'\\x89PNG" in str(error.value) and len(str(error.value)) < 400
