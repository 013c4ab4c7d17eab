"""Unreadable images on the resident path (data.loader=resident: decode.py, images.py, cache.py): left out of the
decoded split with their labels, named, counted in final.json, and judged as the streamed path judges them
(bad_images.py). Each class's images are one solid colour, so a label that drifted off its image shows."""
from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from simclr_core.config import DataConfig
from simclr_core.data.bad_images import MIN_BAD_FOR_VERDICT
from simclr_core.data.image_paths import image_paths
from simclr_core.data.images import load_images
from simclr_core.validation import ConfigError

COLOURS = ((220, 20, 20), (20, 220, 20), (20, 20, 220))      # class 0 red, 1 green, 2 blue
CLASSES = ("a", "b", "c")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def data(tmp_path) -> Path:
    """The data folder, beside the cache (a folder's fingerprint covers what it holds)."""
    return tmp_path / "data"


def jpeg(label: int, side: int = 12) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), COLOURS[label]).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def rows(count: int, bad: set[int], side: int = 12) -> list[tuple[bytes, int]]:
    """(bytes, label) of `count` images, labels cycling over the classes; those in `bad` cut short."""
    out = []
    for i in range(count):
        data = jpeg(i % 3, side)
        out.append((data[:len(data) // 3] if i in bad else data, i % 3))
    return out


def write_folder(root: Path, images, split: str = "train") -> list[Path]:
    files = []
    for i, (data, label) in enumerate(images):
        path = root / split / CLASSES[label] / f"{i:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files.append(path)
    return files


def write_parquet(root: Path, images, split: str = "train") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{split}.parquet"
    pq.write_table(pa.table({"image": [{"bytes": d, "path": f"{CLASSES[l]}/{i:04d}.jpg"}
                                       for i, (d, l) in enumerate(images)],
                             "label": pa.array([l for _, l in images], pa.int64())}), path)
    return path


def config(root: Path, layout: str, **overrides) -> DataConfig:
    return DataConfig(dataset="imagefolder" if layout == "folder" else "parquet", data_dir=str(root),
                      loader="resident", **overrides)


def colour_labels(images: torch.Tensor) -> list[int]:
    """The class each image's colour says: its strongest channel."""
    return images.float().mean(dim=(2, 3)).argmax(dim=1).tolist()


def load_warned(cfg: DataConfig, split: str = "train"):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        held = load_images(cfg, split)
    return held, [str(w.message) for w in caught]


@pytest.mark.parametrize("layout", ["folder", "parquet"])
def test_a_truncated_image_is_left_out_with_its_label_named_and_counted(data, layout):
    images = rows(21, bad={7})
    if layout == "folder":
        named = str(write_folder(data, images)[7])
    else:
        named = f"row 7 of {write_parquet(data, images)}"
    held, said = load_warned(config(data, layout))
    assert len(held) == 20 and held.images.shape == (20, 3, 12, 12)
    assert colour_labels(held.images) == held.labels.tolist()            # every image keeps its own label
    assert held.labels.bincount().tolist() == [7, 6, 7]                   # image 7 was of class 1
    skipped = [m for m in said if "unreadable image" in m]
    assert len(skipped) == 1 and named in skipped[0] and "left out" in skipped[0]
    assert len(held.unreadable) == 1 and named in held.unreadable[0]


@pytest.mark.parametrize("layout", ["folder", "parquet"])
def test_the_cache_gives_the_same_images_labels_and_count_and_says_so(data, layout):
    images = rows(21, bad={0, 11})            # the first image too: the size comes from the first readable one
    (write_folder if layout == "folder" else write_parquet)(data, images)
    first, _ = load_warned(config(data, layout))
    again, said = load_warned(config(data, layout))
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert len(again) == 19 and again.unreadable == first.unreadable
    assert colour_labels(again.images) == again.labels.tolist()
    assert not any("skipping" in m for m in said)                         # not decoded again
    assert any("2 of the 21 images" in m and "left out" in m for m in said)


def test_a_subset_of_the_whole_cached_split_is_the_subset_decoded_alone(tmp_path, monkeypatch):
    images = rows(30, bad={2, 9})
    write_folder(tmp_path / "data", images)
    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "whole"))
    load_images(config(tmp_path / "data", "folder"), "train")            # the whole split decoded and cached
    from_whole, _ = load_warned(config(tmp_path / "data", "folder", train_limit=12))
    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "alone"))
    alone, _ = load_warned(config(tmp_path / "data", "folder", train_limit=12))
    assert torch.equal(from_whole.images, alone.images) and torch.equal(from_whole.labels, alone.labels)
    assert from_whole.unreadable == alone.unreadable
    assert colour_labels(alone.images) == alone.labels.tolist()


def test_an_entry_written_before_images_were_left_out_still_loads(tmp_path, data):
    write_folder(data, rows(9, bad=set()))
    fresh = load_images(config(data, "folder"), "train")
    for meta_path in (tmp_path / "cache").glob("*.json"):                 # as the old code wrote it
        meta = json.loads(meta_path.read_text())
        del meta["unreadable"]
        meta_path.write_text(json.dumps(meta))
    old, said = load_warned(config(data, "folder"))
    assert torch.equal(fresh.images, old.images) and torch.equal(fresh.labels, old.labels) and old.unreadable == ()
    assert not said


def test_too_many_unreadable_images_stop_before_anything_is_cached(tmp_path, data):
    bad = set(range(1, 2 * MIN_BAD_FOR_VERDICT, 2))
    files = write_folder(data, rows(3 * MIN_BAD_FOR_VERDICT, bad=bad))
    with pytest.warns(UserWarning), pytest.raises(ConfigError) as error:
        load_images(config(data, "folder"), "train")
    message = str(error.value)
    for needle in (f"{MIN_BAD_FOR_VERDICT} of the {3 * MIN_BAD_FOR_VERDICT} images", "more than 1%", str(files[1]),
                   str(files[3]), "Re-encode or remove them"):
        assert needle in message, needle
    assert not list((tmp_path / "cache").glob("*.npy"))


def test_a_split_of_which_no_image_decodes_is_one_error(data):
    write_folder(data, rows(4, bad={0, 1, 2, 3}))
    with pytest.warns(UserWarning), pytest.raises(ConfigError, match=r"none of the 4 images could be decoded, e\.g\. "
                                                                     r"\S+0000\.jpg"):
        load_images(config(data, "folder"), "train")


def test_more_than_a_handful_are_named_then_counted(data):
    write_folder(data, rows(900, bad=set(range(0, 70, 10))))       # 7 of 900: under 1%
    held, said = load_warned(config(data, "folder"))
    assert len(held) == 893 and len(held.unreadable) == 7
    assert sum("skipping an unreadable image" in m for m in said) == 5
    assert any("7 of the 900 images could not be decoded" in m for m in said)


def test_readable_images_of_another_size_still_stop_a_split_decoded_at_its_first_size(data):
    images = rows(6, bad={0}) + [(jpeg(0, side=20), 0)]
    write_folder(data, images)
    with pytest.warns(UserWarning), pytest.raises(ConfigError, match=r"a/0003\.jpg is 12 x 12 px and \S+a/0006\.jpg is "
                                                                     r"20 x 20 px"):
        load_images(config(data, "folder"), "train")


def test_image_paths_leave_out_what_the_split_left_out_and_a_subset_file_says_so(tmp_path):
    from simclr_core.evaluate.subset_files import read_subset_file, subset_positions

    write_folder(tmp_path / "data", rows(12, bad={4}))
    cfg = config(tmp_path / "data", "folder")
    assert len(image_paths(cfg, "train")) == 12 and not image_paths(cfg, "train").left_out  # not decoded yet
    held = load_images(cfg, "train")
    paths = image_paths(cfg, "train")
    assert len(paths) == len(held) == 11 and [Path(path).name for _, path, _ in paths.left_out] == ["0004.jpg"]
    assert sorted(Path(p).name for p in paths.paths) == [f"{i:04d}.jpg" for i in range(12) if i != 4]
    listing = tmp_path / "subset.txt"
    listing.write_text("0003.jpg\n0004.jpg\n0005.jpg\n")
    with pytest.warns(UserWarning, match=r"1 of the 3 images \S+subset.txt lists could not be decoded .*line 2: "
                                         r"\S+0004\.jpg .*fine-tuning on the other 2"):
        positions = subset_positions(read_subset_file(str(listing)), paths.paths, paths.rows, paths.total, "",
                                     paths.left_out)
    assert [Path(paths.paths[p]).name for p in positions] == ["0003.jpg", "0005.jpg"]
    assert held.labels[positions].tolist() == colour_labels(held.images[positions])


def test_a_resident_run_counts_the_unreadable_images_in_final_json(tmp_path):
    from simclr_core.config import RunConfig
    from simclr_core.train import train

    write_folder(tmp_path / "data", rows(21, bad={5}))
    write_folder(tmp_path / "data", rows(9, bad={2}), split="test")
    cfg = RunConfig().with_overrides({
        "data.dataset": "imagefolder", "data.data_dir": str(tmp_path / "data"), "data.loader": "resident",
        "encoder.width": 0.25, "batch_size": 8, "epochs": 1, "max_steps": 1, "optim.warmup_epochs": 0,
        "eval.protocols": ("knn",), "eval.knn_k": 3, "seed": 0})
    with pytest.warns(UserWarning, match="unreadable image"):
        metrics = train(cfg, tmp_path / "run")
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    assert final["data_loader"] == "resident"
    assert (final["unreadable_images"], final["unreadable_eval_images"]) == (1, 1) == \
        (metrics["unreadable_images"], metrics["unreadable_eval_images"])
