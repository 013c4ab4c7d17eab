"""The streamed data path (data/encoded.py, data/stream.py) on small image sets made here: JPEG and PNG of
50-600 px, grayscale, CMYK, PNG with alpha, one truncated file; in an image folder and in parquet shards."""
from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from image_rows import tar_shard
from simclr_core.config import DataConfig
from simclr_core.data.decode import decode_image
from simclr_core.data.encoded import WINDOW_UNITS, ParquetSplit, open_encoded
from simclr_core.data.jpeg_header import nvjpeg_decodable
from simclr_core.data.stream import BadImages, Decoder, EvalImages, StreamedBatches, decode_batch
from simclr_core.validation import ConfigError

CLASSES = ("cat", "dog", "fox")
KINDS = ("jpeg", "png", "gray", "cmyk", "rgba")


def encode(kind: str, height: int, width: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((width, height), Image.BILINEAR)
    buffer = io.BytesIO()
    if kind == "jpeg":
        image.save(buffer, format="JPEG", quality=90)
    elif kind == "png":
        image.save(buffer, format="PNG")
    elif kind == "gray":
        image.convert("L").save(buffer, format="JPEG", quality=90)
    elif kind == "cmyk":
        image.convert("CMYK").save(buffer, format="JPEG", quality=90)
    else:
        image.convert("RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def image_set(count: int, seed: int = 0) -> list[tuple[bytes, int, str]]:
    """(bytes, label, suffix) of `count` images of every kind, sides 50..600 px."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        h, w = (int(v) for v in rng.integers(50, 601, 2))
        out.append((encode(kind, h, w, seed * 100_000 + i), i % len(CLASSES), ".png" if "png" in kind or kind == "rgba"
                    else ".jpg"))
    return out


def write_folder(root: Path, images, split: str = "train") -> Path:
    for i, (data, label, suffix) in enumerate(images):
        folder = root / split / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:05d}{suffix}").write_bytes(data)
    return root


def write_parquet(root: Path, images, split: str = "train", shards: int = 2, row_group: int = 7) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True, exist_ok=True)
    per = -(-len(images) // shards)
    for s in range(shards):
        part = images[s * per:(s + 1) * per]
        table = pa.table({"image": [{"bytes": d, "path": None} for d, _, _ in part],
                          "label": pa.array([l for _, l, _ in part], pa.int64())})
        pq.write_table(table, root / f"{split}-{s:05d}-of-{shards:05d}.parquet", row_group_size=row_group)
    return root


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Indexes cached by a test (tar shards) and splits it decodes stay in its own folder."""
    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def images():
    return image_set(40)


@pytest.fixture(params=["folder", "parquet", "tar"])
def split(request, tmp_path, images):
    if request.param == "folder":
        write_folder(tmp_path / "data", images)
        return open_encoded(DataConfig(dataset="imagefolder", data_dir=str(tmp_path / "data")), "train")
    (write_parquet if request.param == "parquet" else write_tar)(tmp_path / "data", images)
    return open_encoded(DataConfig(dataset="parquet", data_dir=str(tmp_path / "data")), "train")


def test_the_index_holds_every_image_and_label_without_decoding(split, images):
    assert len(split) == len(images) and split.num_classes == len(CLASSES)
    assert sorted(np.bincount(split.labels).tolist()) == sorted(np.bincount([l for _, l, _ in images]).tolist())
    data = split.read(range(len(split)))
    assert sorted(data) == sorted(d for d, _, _ in images)           # every image's bytes, once


def test_every_kind_decodes_to_rgb_of_its_own_size(images):
    for data, _, _ in images[:len(KINDS)]:
        with Image.open(io.BytesIO(data)) as pil:
            width, height = pil.size
            expected = torch.from_numpy(np.array(pil.convert("RGB"))).permute(2, 0, 1)
        image = decode_image(data, None)
        assert image.shape == (3, height, width) and image.dtype == torch.uint8
        assert (image.int() - expected.int()).abs().float().mean() < 2            # JPEG decoders differ slightly


@pytest.mark.parametrize("world", [1, 2, 3])
def test_processes_read_disjoint_images_whose_union_is_the_epoch(split, world):
    local = 4
    orders = [split.epoch_order(7, 0, rank, world, local) for rank in range(world)]
    steps = len(split) // (local * world)
    assert all(len(o) == steps * local for o in orders)
    if not isinstance(split, ParquetSplit):   # the resident path's order: all but the last partial batch
        seen = np.concatenate(orders)
        assert len(set(seen.tolist())) == len(seen) == steps * local * world
    else:
        for a in range(world):
            for b in range(a + 1, world):
                assert not set(orders[a].tolist()) & set(orders[b].tolist())
    again = [split.epoch_order(7, 0, rank, world, local) for rank in range(world)]
    assert all(np.array_equal(a, b) for a, b in zip(orders, again))
    assert not np.array_equal(orders[0], split.epoch_order(7, 1, 0, world, local))


def test_parquet_epochs_visit_whole_row_groups_a_window_at_a_time(tmp_path, images):
    write_parquet(tmp_path / "p", images, shards=1, row_group=4)
    split = open_encoded(DataConfig(dataset="parquet", data_dir=str(tmp_path / "p")), "train")
    assert isinstance(split, ParquetSplit) and len(split.units) == 10
    order = split.epoch_order(0, 0, 0, 1, 5)
    assert len(order) == 40 and sorted(order.tolist()) == list(range(40))
    groups_per_window = WINDOW_UNITS * 4
    for start in range(0, 40, groups_per_window):                          # a window draws from its groups only
        assert len({i // 4 for i in order[start:start + groups_per_window]}) <= WINDOW_UNITS


def test_streamed_batches_are_those_of_the_order_and_resume_exactly(split):
    kwargs = dict(seed=3, local_batch=4, rank=0, world=1, steps_per_epoch=len(split) // 4, device=torch.device("cpu"),
                  threads=2)
    with StreamedBatches(split, start_step=0, stop_step=12, **kwargs) as full:
        whole = [(step, [x.clone() for x in images]) for step, images in full]
    assert [s for s, _ in whole] == list(range(12))                       # more than one epoch
    with StreamedBatches(split, start_step=7, stop_step=12, **kwargs) as resumed:
        tail = list(resumed)
    for (s1, a), (s2, b) in zip(whole[7:], tail):
        assert s1 == s2 and all(torch.equal(x, y) for x, y in zip(a, b))
    first = split.epoch_order(3, 0, 0, 1, 4)[:4]
    expected = [decode_image(d, None) for d in split.read(first)]
    assert all(torch.equal(x, y) for x, y in zip(whole[0][1], expected))


def test_streamed_batches_with_labels_carry_each_image_s_own_label(split):
    """A supervised run's batches: the labels of the rows read, in the images' order (the index's labels)."""
    common = dict(seed=3, local_batch=4, rank=0, world=1, steps_per_epoch=len(split) // 4, start_step=0,
                  stop_step=4, device=torch.device("cpu"), threads=1)
    with StreamedBatches(split, **common) as plain, StreamedBatches(split, labels=True, **common) as labelled:
        for (step, images), (same_step, (same_images, labels)) in zip(plain, labelled):
            assert step == same_step and labels.dtype == torch.int64
            assert labels.tolist() == split.labels[plain.indices(step)].tolist()
            assert all(torch.equal(a, b) for a, b in zip(images, same_images))


def test_a_truncated_image_is_replaced_with_a_warning_naming_it_and_counted(tmp_path, images):
    damaged = list(images[:12])
    data, label, suffix = damaged[3]
    damaged[3] = (data[: len(data) // 3], label, suffix)
    write_parquet(tmp_path / "p", damaged, shards=1)
    split = open_encoded(DataConfig(dataset="parquet", data_dir=str(tmp_path / "p")), "train")
    bad = BadImages()
    with pytest.warns(UserWarning, match=r"unreadable image: row 3 of .*train-00000-of-00001.parquet"):
        batch = decode_batch(split, np.arange(12), Decoder(torch.device("cpu"), 1), bad)
    assert len(batch) == 12 and bad.bad == 1 and bad.seen == 12
    assert all(x.dtype == torch.uint8 and x.shape[0] == 3 for x in batch)


def test_images_smaller_than_the_view_are_counted_with_one_warning(tmp_path, images):
    write_folder(tmp_path / "f", images[:8])
    split = open_encoded(DataConfig(dataset="imagefolder", data_dir=str(tmp_path / "f")), "train")
    sides = [min(decode_image(d, None).shape[-2:]) for d in split.read(range(8))]
    bad = BadImages()
    with pytest.warns(UserWarning, match=r"smaller than the 400 px views: its crops are upscaled") as caught:
        decode_batch(split, np.arange(8), Decoder(torch.device("cpu"), 1), bad, view_side=400)
    assert bad.small == sum(side < 400 for side in sides) > 0
    assert sum("smaller than the 400 px views" in str(w.message) for w in caught) == 1


def test_too_many_unreadable_images_stop_with_a_clear_error(tmp_path, images):
    damaged = [(d[:40], l, s) if i % 2 else (d, l, s) for i, (d, l, s) in enumerate(images[:20])]
    write_folder(tmp_path / "f", damaged)
    split = open_encoded(DataConfig(dataset="imagefolder", data_dir=str(tmp_path / "f")), "train")
    with pytest.warns(UserWarning), pytest.raises(ConfigError, match=r"10 of the 20 images .* could not be decoded "
                                                                      r"\(more than 1%\); the first: .*\.(jpg|png)"):
        decode_batch(split, np.arange(20), Decoder(torch.device("cpu"), 2), BadImages())


def test_eval_images_are_resized_and_centre_cropped_in_order(split):
    stream = EvalImages(split, 32, 8 / 7, torch.device("cpu"), threads=2)
    batches = list(stream.batches(16))
    assert [len(b) for b in batches] == [16, 16, 8] and batches[0].shape[1:] == (3, 32, 32)
    from simclr_core.data.decode import fit_square
    first = decode_image(split.read([0])[0], None)
    assert torch.equal(batches[0][0], fit_square(first, 32, 8 / 7))
    assert torch.equal(stream.labels, torch.from_numpy(split.labels))


@pytest.mark.parametrize("bad, needle", [
    ("empty", "holds no images"),
    ("label_out_of_range",
     r"row 0 of .*train.parquet has label 5, outside the 3 classes .* valid labels lie in \[0, 2\]"),
])
def test_bad_sources_fail_before_any_step_naming_the_problem(tmp_path, bad, needle):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "p"
    if bad == "empty":
        (root / "train" / "cat").mkdir(parents=True)
        cfg = DataConfig(dataset="imagefolder", data_dir=str(root))
    else:
        root.mkdir()
        columns = {"image": [{"bytes": encode("jpeg", 60, 60, 0), "path": None}]}
        if bad == "label_out_of_range":
            columns["label"] = pa.array([5], pa.int64())
        table = pa.table(columns)
        if bad == "label_out_of_range":   # a ClassLabel of 3 names, as `datasets` records it
            meta = b'{"info": {"features": {"label": {"_type": "ClassLabel", "names": ["a", "b", "c"]}}}}'
            table = table.replace_schema_metadata({b"huggingface": meta})
        pq.write_table(table, root / "train.parquet")
        cfg = DataConfig(dataset="parquet", data_dir=str(root))
    with pytest.raises(ConfigError, match=needle):
        open_encoded(cfg, "train")


def test_host_memory_stays_bounded_when_the_dataset_grows_tenfold(tmp_path):
    """The resident set while streaming 2,000 images grows no more with 2,000 images in the dataset than with 200
    (row groups of 20 images; a process holds WINDOW_UNITS of them, not the dataset)."""
    few, many = tmp_path / "few", tmp_path / "many"
    base = image_set(200, seed=5)
    write_parquet(few, base, shards=1, row_group=20)
    write_parquet(many, base * 10, shards=4, row_group=20)
    script = textwrap.dedent("""
        import sys, psutil, torch
        from simclr_core.config import DataConfig
        from simclr_core.data.encoded import open_encoded
        from simclr_core.data.stream import StreamedBatches
        split = open_encoded(DataConfig(dataset="parquet", data_dir=sys.argv[1]), "train")
        process, rss = psutil.Process(), []
        with StreamedBatches(split, seed=0, local_batch=8, rank=0, world=1, steps_per_epoch=len(split) // 8,
                             start_step=0, stop_step=250, device=torch.device("cpu"), threads=2) as batches:
            for _ in batches:
                rss.append(process.memory_info().rss)
        print((max(rss) - rss[0]) // 1024)
    """)
    grown = []
    for root in (few, many):
        done = subprocess.run([sys.executable, "-c", script, str(root)], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        grown.append(int(done.stdout.split()[-1]))
    print(f"resident set growth while streaming: {grown[0]} kB (200 images), {grown[1]} kB (2,000 images)")
    assert grown[1] < grown[0] + 60_000, grown      # kB; holding every row group read adds ~140 MB (measured)


# ---- train() on the streamed path ----------------------------------------------------------------------
def stream_config(data_dir: Path, dataset: str, **overrides):
    from simclr_core.config import RunConfig

    return RunConfig().with_overrides({
        "data.dataset": dataset, "data.data_dir": str(data_dir), "data.image_size": 32, "encoder.width": 0.25,
        "batch_size": 8, "epochs": 1, "optim.warmup_epochs": 0.25, "log_every_steps": 1,
        "checkpoint_every_steps": 2, "eval.protocols": ("knn",), "eval.knn_k": 5, "seed": 2, **overrides})


def logged_losses(run_dir: Path) -> list[tuple[int, float]]:
    import json

    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if "loss" in r]


@pytest.mark.parametrize("layout", ["folder", "parquet", "tar"])
def test_train_streams_photos_of_every_size_and_resumes_exactly(tmp_path, images, layout):
    from simclr_core.train import train

    data = tmp_path / "data"
    write = {"folder": write_folder, "parquet": write_parquet, "tar": write_tar}[layout]
    write(data, images)
    write(data, images[:20], split="test")
    dataset = "imagefolder" if layout == "folder" else "parquet"
    full = train(stream_config(data, dataset, max_steps=4), tmp_path / "full")
    assert full["data_loader"] == "stream" and full["unreadable_images"] == 0 and full["images_read"] == 32
    assert full["images_smaller_than_view"] == 0                       # 50-600 px against 32 px views
    assert str(data) in full["data_source"]
    assert 0 <= full["knn_top1"] <= 100
    train(stream_config(data, dataset, max_steps=2), tmp_path / "cut")
    train(stream_config(data, dataset, max_steps=4), tmp_path / "cut")
    assert logged_losses(tmp_path / "cut") == logged_losses(tmp_path / "full")


@pytest.mark.parametrize("layout", ["folder", "parquet"])
def test_a_supervised_run_streams_labelled_photos_and_resumes_exactly(tmp_path, images, layout):
    from simclr_core.train import train

    data = tmp_path / "data"
    write = {"folder": write_folder, "parquet": write_parquet}[layout]
    write(data, images)
    write(data, images[:20], split="test")
    dataset = "imagefolder" if layout == "folder" else "parquet"
    supervised = {"method": "supervised", "eval.protocols": ("supervised",)}
    full = train(stream_config(data, dataset, max_steps=4, **supervised), tmp_path / "full")
    assert full["data_loader"] == "stream" and 0 <= full["supervised_top1"] <= 100
    train(stream_config(data, dataset, max_steps=2, **supervised), tmp_path / "cut")
    train(stream_config(data, dataset, max_steps=4, **supervised), tmp_path / "cut")
    assert logged_losses(tmp_path / "cut") == logged_losses(tmp_path / "full")


def test_a_resident_run_of_the_same_folder_is_recorded_as_such(tmp_path, images):
    from simclr_core.train import train

    write_folder(tmp_path / "data", images)
    write_folder(tmp_path / "data", images[:20], split="test")
    metrics = train(stream_config(tmp_path / "data", "imagefolder", max_steps=1, **{"data.loader": "resident"}),
                    tmp_path / "run")
    assert metrics["data_loader"] == "resident" and "images_read" not in metrics
    assert metrics["unreadable_images"] == metrics["unreadable_eval_images"] == 0


@pytest.mark.parametrize("overrides, needle", [
    ({"data.train_limit": 16}, r"so data.train_limit=16 needs data.loader=resident: add data.train_limit=none \(all "
                               r"images\) or data.loader=resident"),
    ({"augment.ops": ("color", "crop")}, r"must start with 'crop' \(each view is cropped from its own image"),
    ({"data.loader": "disk"}, "data.loader='disk' is not valid; choose one of: 'auto', 'resident', 'stream'"),
])
def test_streamed_runs_refuse_what_they_cannot_do_before_any_step(tmp_path, images, overrides, needle):
    from simclr_core.train import train

    write_folder(tmp_path / "data", images[:10])
    with pytest.raises(ConfigError, match=needle):
        train(stream_config(tmp_path / "data", "imagefolder", **overrides), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_decode_equals_cpu_decode_within_jpeg_tolerance(images):
    """nvjpeg and libjpeg-turbo may differ by a grey level or two (IDCT and upsampling); PNG, CMYK and
    grayscale go through the CPU fallback and must come back exact."""
    data = [d for d, _, _ in images[:10]]
    decoder = Decoder(torch.device("cuda"), 2)
    on_gpu = decoder(data)
    on_cpu = Decoder(torch.device("cpu"), 2)(data)
    for (gpu, _), (cpu, _) in zip(on_gpu, on_cpu):
        assert gpu.is_cuda and gpu.shape == cpu.shape
        difference = (gpu.cpu().int() - cpu.int()).abs().float()
        assert difference.mean() < 1.5 and difference.max() <= 64
    # nvjpeg decoded the RGB and grey JPEGs itself (none of its batches fell back to the CPU), the CPU the rest
    assert decoder.gpu_refused == 0 and decoder.gpu_decoded == sum(map(nvjpeg_decodable, data)) == 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_decode_is_not_overwritten_by_work_still_queued_on_the_current_stream():
    """nvjpeg writes on streams of its own without waiting for the current one: were its outputs allocated on
    the current stream, they could land in a block freed there while a kernel queued behind slow work is still
    to write it (pytorch/vision#9606). Here each batch is decoded behind such kernels, of the images' own size."""
    photos = [encode("jpeg", 300, 400, seed) for seed in range(8)]
    expected = [image for image, _ in Decoder(torch.device("cpu"), 2)(photos)]
    decoder = Decoder(torch.device("cuda"), 2)
    slow = torch.randn(4096, 4096, device="cuda")
    for _ in range(4):
        for _ in range(20):
            slow = slow @ slow                                  # tens of milliseconds queued on the stream
        for image in expected:
            torch.empty_like(image, device="cuda").fill_(7)     # freed at once; its fill runs after the matmuls
        for gpu, cpu in zip([image for image, _ in decoder(photos)], expected):
            assert (gpu.cpu().int() - cpu.int()).abs().float().mean() < 1.5
    assert decoder.gpu_decoded == 4 * len(photos)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("labels", [False, True], ids=["simclr", "supervised"])
def test_streamed_batches_reach_the_gpu_without_a_host_sync_in_the_step(split, labels):
    from simclr_core.augment import build_augmentation
    from simclr_core.config import AugmentConfig

    augment = build_augmentation(AugmentConfig(ops=("crop", "color", "blur")), 32, (0.5,) * 3, (0.25,) * 3)
    with StreamedBatches(split, seed=0, local_batch=4, rank=0, world=1, steps_per_epoch=len(split) // 4,
                         start_step=0, stop_step=3, device=torch.device("cuda"), threads=2,
                         labels=labels) as batches:
        for step, images in batches:
            if labels:
                images, batch_labels = images
                assert batch_labels.is_cuda
            assert all(x.is_cuda for x in images)
            torch.cuda.set_sync_debug_mode("error")
            try:
                augment.views_from_originals(images, torch.Generator().manual_seed(step))
            finally:
                torch.cuda.set_sync_debug_mode("default")


def test_knn_and_linear_evaluation_read_each_streamed_split_once(tmp_path, images, monkeypatch):
    from simclr_core.data import stream as stream_module
    from simclr_core.train import train

    write_folder(tmp_path / "data", images)
    write_folder(tmp_path / "data", images[:20], split="test")
    passes = []
    real = stream_module.EvalImages.batches

    def counted(self, batch_size, rows=None):
        passes.append(len(self))
        return real(self, batch_size, rows)

    monkeypatch.setattr(stream_module.EvalImages, "batches", counted)
    metrics = train(stream_config(tmp_path / "data", "imagefolder", max_steps=1,
                                  **{"eval.protocols": ("knn", "linear"), "eval.linear_epochs": 2}), tmp_path / "run")
    assert sorted(passes) == [20, 40]                                   # each split decoded once, not once per protocol
    assert 0 <= metrics["knn_top1"] <= 100 and 0 <= metrics["linear_top1"] <= 100


def write_tar(root: Path, images, split: str = "train", shards: int = 2) -> Path:
    """WebDataset shards: key.jpg/.png beside key.cls."""
    import tarfile

    root.mkdir(parents=True, exist_ok=True)
    per = -(-len(images) // shards)
    for s in range(shards):
        with tarfile.open(root / f"{split}-{s:06d}.tar", "w") as archive:
            for i, (data, label, suffix) in enumerate(images[s * per:(s + 1) * per], start=s * per):
                for name, payload in ((f"{i:06d}{suffix}", data), (f"{i:06d}.cls", str(label).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    archive.addfile(info, io.BytesIO(payload))
    return root


def test_webdataset_tar_shards_are_indexed_and_read_by_offset(tmp_path, images):
    from simclr_core.data.encoded import TarSplit

    write_tar(tmp_path / "t", images)
    split = open_encoded(DataConfig(dataset="parquet", data_dir=str(tmp_path / "t")), "train")
    assert isinstance(split, TarSplit) and len(split) == len(images)
    assert split.read([0, 39, 5]) == [images[0][0], images[39][0], images[5][0]]
    assert split.labels.tolist() == [l for _, l, _ in images]
    assert split.where(39) == f"000039{images[39][2]} in {tmp_path / 't' / 'train-000001.tar'}"


def test_a_tar_index_is_built_once_cached_and_built_again_when_a_shard_changes(tmp_path, images, monkeypatch):
    from simclr_core.data import encoded

    cfg = DataConfig(dataset="parquet", data_dir=str(tmp_path / "t"))
    write_tar(tmp_path / "t", images)
    built = open_encoded(cfg, "train")
    assert len(list((tmp_path / "cache").glob("*.index.npz"))) == 1
    real_index_tar = encoded.index_tar
    monkeypatch.setattr(encoded, "index_tar", lambda files: pytest.fail("indexed again instead of the cache"))
    again = open_encoded(cfg, "train")
    assert again.labels.tolist() == built.labels.tolist() and again.members == built.members
    assert again.read([0, 39, 5]) == [images[0][0], images[39][0], images[5][0]]
    assert again.where(39) == built.where(39) and again.num_classes == built.num_classes == len(CLASSES)

    calls = []
    monkeypatch.setattr(encoded, "index_tar", lambda files: calls.append(files) or real_index_tar(files))
    write_tar(tmp_path / "t", images[:30])                            # the shards rewritten: other sizes
    assert len(open_encoded(cfg, "train")) == 30 and len(calls) == 1
    for entry in (tmp_path / "cache").glob("*.index.npz"):
        entry.write_bytes(entry.read_bytes()[:100])                   # a damaged entry is rebuilt, not trusted
    assert len(open_encoded(cfg, "train")) == 30 and len(calls) == 2


def test_a_tar_index_the_cache_cannot_hold_serves_the_run_with_a_warning(tmp_path, images, monkeypatch):
    import errno

    from simclr_core.data import cache

    def full_disk(f, **arrays):
        f.write(b"PK")
        raise OSError(errno.ENOSPC, "No space left on device")

    write_tar(tmp_path / "t", images)
    monkeypatch.setattr(cache.np, "savez", full_disk)
    with pytest.warns(UserWarning, match=r"could not cache the index in .*index\.npz \(No space left on device\); "
                                         r"this run uses it from memory, the next one builds it again"):
        split = open_encoded(DataConfig(dataset="parquet", data_dir=str(tmp_path / "t")), "train")
    assert len(split) == len(images) and split.read([3]) == [images[3][0]]
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []


def test_a_tar_index_with_a_cache_folder_that_cannot_be_written_serves_the_run(tmp_path, images, monkeypatch):
    write_tar(tmp_path / "t", images)
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "a-file" / "cache"))
    with pytest.warns(UserWarning, match=r"could not cache the index in .*a-file/cache/.*\(Not a directory\)"):
        split = open_encoded(DataConfig(dataset="parquet", data_dir=str(tmp_path / "t")), "train")
    assert len(split) == len(images) and split.read([7]) == [images[7][0]]


def _tar_of(root: Path, members: dict[str, bytes]) -> Path:
    return tar_shard(root / "train-000000.tar", members).parent


def test_a_tar_sample_without_a_label_among_labelled_ones_is_named(tmp_path, images):
    """Shards without any .cls are images without labels (test_unlabelled.py); one sample without its .cls among
    labelled ones is a mistake."""
    root = _tar_of(tmp_path / "t", {"sample6.jpg": images[0][0], "sample6.cls": b"1",
                                     "sample7.jpg": images[1][0], "sample8.jpg": images[2][0], "sample8.cls": b"0"})
    with pytest.raises(ConfigError, match=r"sample7.jpg in \S+train-000000.tar: sample 'sample7' has an image but no "
                                          r"sample7.cls label, while 2 other samples of the split have one"):
        open_encoded(DataConfig(dataset="parquet", data_dir=str(root)), "train")


def test_image_members_left_out_of_a_tar_index_are_told_each_time_it_is_opened(tmp_path, images):
    """A sample of key.jpg and key.png is one image: the other one is left out, with a warning also when the index
    comes from the cache."""
    root = _tar_of(tmp_path / "t", {"s1.jpg": images[0][0], "s1.cls": b"0", "s1.png": images[1][0],
                                     "s2.jpg": images[2][0], "s2.cls": b"1"})
    cfg = DataConfig(dataset="parquet", data_dir=str(root))
    for _ in range(2):                                              # built, then read from the cache
        with pytest.warns(UserWarning, match=r"^1 members or samples of \S+train-000000.tar \(webdataset\) are not "
                                             r"read \(e.g. s1.png in \S+: sample 's1' holds s1.jpg already\): a "
                                             r"sample is one image, its first image member"):
            split = open_encoded(cfg, "train")
        assert len(split) == 2 and split.read([0]) == [images[0][0]]


@pytest.mark.parametrize("text", [b"-1", b"cat"])
def test_a_cls_member_that_holds_no_class_index_is_named(tmp_path, images, text):
    root = _tar_of(tmp_path / "t", {"sample6.jpg": images[0][0], "sample6.cls": text})
    with pytest.raises(ConfigError, match=rf"train-000000.tar: sample6.cls holds '{text.decode()}', not a class index "
                                          r"\(a whole number from 0\)"):
        open_encoded(DataConfig(dataset="parquet", data_dir=str(root)), "train")


def test_the_resident_path_refuses_tar_shards_naming_the_streamed_one(tmp_path, images):
    from simclr_core.data import load_images

    write_tar(tmp_path / "t", images[:6])
    with pytest.raises(ConfigError, match="WebDataset tar shards are read by the streamed path; set data.loader"):
        load_images(DataConfig(dataset="parquet", data_dir=str(tmp_path / "t"), loader="resident"), "train")


@pytest.mark.distributed
@pytest.mark.slow
def test_two_streaming_processes_equal_one_process_on_the_union_of_their_images(tmp_path, images):
    """2 CPU processes (gloo, global BN) streaming an image folder: each reads its own images of the epoch order,
    and the first step's loss equals one process on the union of both ranks' views."""
    from test_train import train_in_two_processes

    from simclr_core.augment import build_augmentation
    from simclr_core.data.catalog import IMAGENET_MEAN, IMAGENET_STD
    from simclr_core.losses import compute_loss
    from simclr_core.models import build_model
    from simclr_core.seeding import step_seed

    data = tmp_path / "data"
    write_folder(data, images)
    write_folder(data, images[:12], split="test")
    cfg = stream_config(data, "imagefolder", max_steps=2, precision="no", batch_size=8,
                        **{"encoder.global_bn": True})
    metrics = [r["metrics"] for r in train_in_two_processes(cfg, tmp_path / "run", tmp_path)]
    assert metrics[0]["knn_top1"] == metrics[1]["knn_top1"] and metrics[0]["images_read"] == 2 * 8

    split = open_encoded(cfg.data, "train")
    augment = build_augmentation(cfg.augment, 32, IMAGENET_MEAN, IMAGENET_STD)
    views = []
    for rank in range(2):
        indices = split.epoch_order(cfg.seed, 0, rank, 2, 4)[:4]
        decoded = [decode_image(d, None) for d in split.read(indices)]
        generator = torch.Generator().manual_seed(step_seed(cfg.seed, 0, rank))
        views.append(augment.views_from_originals(decoded, generator))
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.encoder, cfg.head, 32).train()
    with torch.no_grad():
        _, z = model(torch.cat([v1 for v1, _ in views] + [v2 for _, v2 in views]))
    expected = compute_loss(cfg.loss, *z.split(8)).item()
    logged = logged_losses(tmp_path / "run")[0][1]
    assert logged == pytest.approx(expected, rel=1e-4)


def test_one_row_group_still_feeds_every_process_without_repeats(tmp_path, images):
    write_parquet(tmp_path / "p", images, shards=1, row_group=len(images))      # CIFAR-10's parquet: one group
    split = open_encoded(DataConfig(dataset="parquet", data_dir=str(tmp_path / "p")), "train")
    orders = [split.epoch_order(0, 0, rank, 2, 4) for rank in (0, 1)]
    assert [len(o) for o in orders] == [20, 20]
    assert len(set(np.concatenate(orders).tolist())) == 40                    # disjoint, nothing taken twice


def test_an_image_that_cannot_even_be_read_is_counted_as_unreadable(tmp_path, images):
    write_folder(tmp_path / "f", images[:6])
    split = open_encoded(DataConfig(dataset="imagefolder", data_dir=str(tmp_path / "f")), "train")
    gone = Path(split.where(2))
    gone.unlink()                                                             # deleted after indexing
    bad = BadImages()
    with pytest.warns(UserWarning, match=rf"unreadable image: .*{gone.name} \(FileNotFoundError"):
        batch = decode_batch(split, np.arange(6), Decoder(torch.device("cpu"), 1), bad)
    assert len(batch) == 6 and bad.bad == 1


def test_tar_shards_open_at_once_stay_bounded(tmp_path, images, monkeypatch):
    from simclr_core.data import encoded

    write_tar(tmp_path / "t", images, shards=5)
    monkeypatch.setattr(encoded, "OPEN_SHARDS", 2)
    split = open_encoded(DataConfig(dataset="parquet", data_dir=str(tmp_path / "t")), "train")
    assert split.read(range(0, 40, 3)) == [images[i][0] for i in range(0, 40, 3)]
    assert len(split._handles) == 2


def test_an_evaluation_stream_stopped_early_leaves_no_thread_behind(split):
    import threading
    import time

    stream = EvalImages(split, 32, 8 / 7, torch.device("cpu"), threads=1)
    for _ in range(3):
        batches = stream.batches(4)
        next(batches)
        batches.close()                                                       # the consumer stops early
    deadline = time.monotonic() + 10
    while any(t.name == "stream-eval" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "stream-eval" for t in threading.enumerate())


def test_a_run_that_stops_on_an_error_leaves_no_reader_behind(tmp_path, images, monkeypatch):
    import threading

    from test_train import poison_loss_at

    from simclr_core import train as train_module

    write_folder(tmp_path / "data", images)
    write_folder(tmp_path / "data", images[:12], split="test")
    poison_loss_at(monkeypatch, 2)
    with pytest.raises(train_module.NonFiniteLossError):
        train_module.train(stream_config(tmp_path / "data", "imagefolder"), tmp_path / "run")
    assert not any(t.name == "stream-batches" and t.is_alive() for t in threading.enumerate())
