"""Evaluations that augment on the streamed data path: fine-tuning and the transformation probe decode images whole,
batch by batch, and crop each view from the original image, as pretraining does. Fine-tuning takes the same
labelled images, in the same order, as on the resident path."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from simclr_core.config import DataConfig
from simclr_core.data.decode import decode_image
from simclr_core.data.encoded import open_encoded
from simclr_core.data.stream import EvalImages
from simclr_core.evaluate.features import channel_stats, normalize
from simclr_core.evaluate.finetune import balanced_subset, finetune_eval
from simclr_core.models import build_model
from simclr_core.config import EncoderConfig, HeadConfig
from simclr_core.validation import ConfigError

from test_stream import CLASSES, image_set, stream_config, write_folder

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _squares(count: int, side: int) -> list[tuple[bytes, int, str]]:
    """Lossless PNG squares of one side: decoded, they are exactly what the resident path would hold."""
    rng = np.random.default_rng(7)
    out = []
    for i in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buffer, format="PNG")
        out.append((buffer.getvalue(), i % len(CLASSES), ".png"))
    return out


def _encoder() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(EncoderConfig(width=0.25), HeadConfig(), 16).encoder


def test_labelled_originals_are_the_rows_decoded_whole_in_the_order_asked(tmp_path):
    write_folder(tmp_path / "data", image_set(12))
    split = open_encoded(DataConfig(dataset="imagefolder", data_dir=str(tmp_path / "data")), "train")
    stream = EvalImages(split, 32, 8 / 7, torch.device("cpu"), threads=2)
    rows = torch.tensor([9, 2, 5, 11])
    originals = stream.originals(rows)
    assert len(originals) == 4
    batches = list(originals.batches([torch.tensor([3, 0]), torch.tensor([1, 2])]))
    for (batch, labels), positions in zip(batches, ([3, 0], [1, 2])):
        assert labels.tolist() == split.labels[rows[positions].numpy()].tolist()
        for image, position in zip(batch, positions):
            assert torch.equal(image, decode_image(split.read([int(rows[position])])[0], None))   # its own size
    with pytest.raises(ConfigError, match="rows must index the 12 images"):
        stream.originals(torch.tensor([12]))


def test_streamed_fine_tuning_equals_resident_on_the_same_images(tmp_path):
    """Squares of the view's side, augmented the same way on both paths (normalisation only): the same labelled
    subset, batches, updates and test accuracy, to the bit."""
    side = 16
    train_set, test_set = _squares(30, side), _squares(12, side)
    write_folder(tmp_path / "data", train_set)
    write_folder(tmp_path / "data", test_set, split="test")
    data = DataConfig(dataset="imagefolder", data_dir=str(tmp_path / "data"))
    train_split, test_split = open_encoded(data, "train"), open_encoded(data, "test")
    streamed_train = EvalImages(train_split, side, 1.0, torch.device("cpu"), threads=1)
    streamed_test = EvalImages(test_split, side, 1.0, torch.device("cpu"), threads=1)
    resident_train = torch.cat(list(streamed_train.batches(64)))        # squares of the side: fit_square keeps them
    resident_test = torch.cat(list(streamed_test.batches(64)))
    mean_t, std_t = channel_stats(MEAN, STD, torch.device("cpu"))

    common = dict(mean=MEAN, std=STD, num_classes=3, label_fraction=0.5, epochs=2, batch_size=4, lr=0.05, seed=3)
    resident = finetune_eval(_encoder(), resident_train, streamed_train.labels, resident_test, streamed_test.labels,
                             augment=lambda x, g: normalize(x, mean_t, std_t), **common)
    streamed = finetune_eval(_encoder(), streamed_train, streamed_train.labels, streamed_test, streamed_test.labels,
                             augment=lambda originals, g: normalize(torch.stack(originals), mean_t, std_t), **common)
    assert streamed == resident
    assert streamed_train.bad.reads == 2 * 15 + 30         # 2 epochs of the 15 labelled images, after one pass
    assert streamed_train.bad.seen == 30                   # each image once


def test_streamed_fine_tuning_needs_an_augmentation_that_reads_originals(tmp_path):
    write_folder(tmp_path / "data", _squares(6, 16))
    split = open_encoded(DataConfig(dataset="imagefolder", data_dir=str(tmp_path / "data")), "train")
    stream = EvalImages(split, 16, 1.0, torch.device("cpu"), threads=1)
    with pytest.raises(ConfigError, match="needs an `augment` that crops views from the originals"):
        finetune_eval(_encoder(), stream, stream.labels, stream, stream.labels, mean=MEAN, std=STD, num_classes=3,
                      label_fraction=0.5, epochs=1, batch_size=2, lr=0.05, seed=0)


def test_a_streamed_run_fine_tunes_on_crops_of_photos_of_every_size(tmp_path):
    from simclr_core.train import train

    photos = image_set(30)
    write_folder(tmp_path / "data", photos)
    write_folder(tmp_path / "data", image_set(12, seed=1), split="test")
    cfg = stream_config(tmp_path / "data", "imagefolder", max_steps=2, **{
        "eval.protocols": ("knn", "finetune"), "eval.finetune_fractions": (0.1, 0.5), "eval.finetune_epochs": 1,
        "eval.finetune_batch_size": 4})
    metrics = train(cfg, tmp_path / "run")
    assert metrics["data_loader"] == "stream"
    labels = torch.tensor([label for _, label, _ in photos])
    for fraction, pct in ((0.1, "10pct"), (0.5, "50pct")):
        expected = balanced_subset(labels.sort(stable=True).values, fraction, num_classes=3, seed=cfg.seed).numel()
        assert metrics[f"finetune_examples_{pct}"] == expected
        assert 0 <= metrics[f"finetune_top1_{pct}"] <= 100 and metrics[f"finetune_top5_{pct}"] == 100.0   # 3 classes
    assert metrics["unreadable_eval_images"] == 0


@pytest.mark.parametrize("layout", ["folder", "parquet", "tar"])
def test_official_subset_files_name_images_of_the_streams_index(tmp_path, layout):
    from simclr_core.evaluate.subset_files import official_subsets
    from test_stream import write_tar

    photos = image_set(12)
    if layout == "folder":
        write_folder(tmp_path / "data", photos)
        dataset, names = "imagefolder", ["dog/00004.png", f"00009{photos[9][2]}"]   # a path tail, or the file name
    elif layout == "tar":
        write_tar(tmp_path / "data", photos)
        dataset, names = "parquet", None
    else:
        _write_parquet_with_paths(tmp_path / "data", photos)
        dataset, names = "parquet", ["img/00004.jpg", "00009.jpg"]
    split = open_encoded(DataConfig(dataset=dataset, data_dir=str(tmp_path / "data")), "train")
    paths = split.stored_paths()
    assert len(paths) == len(split) == 12
    names = names or [paths[4], paths[9]]                                        # tar: member names
    listed = tmp_path / "subset.txt"
    listed.write_text("\n".join(names) + "\n")
    cfg = stream_config(tmp_path / "data", dataset, **{"eval.protocols": ("finetune",),
                                                       "eval.finetune_fractions": (0.1,),
                                                       "eval.finetune_subset_files": (str(listed),)})
    [positions] = official_subsets(cfg)
    assert len(positions) == 2 and {n for n in names for p in positions if paths[p].endswith(n)} == set(names)
    rows = tmp_path / "rows.txt"
    rows.write_text("3\n7\n")
    [by_rows] = official_subsets(cfg.with_overrides({"eval.finetune_subset_files": (str(rows),)}))
    assert sorted(by_rows.tolist()) == [3, 7]                                   # rows of the index's order

    missing = tmp_path / "missing.txt"
    missing.write_text(names[0] + "\nnot-there.jpg\n")
    with pytest.raises(ConfigError, match=r"missing.txt.*line 2.*not-there.jpg"):
        official_subsets(cfg.with_overrides({"eval.finetune_subset_files": (str(missing),)}))


def _write_parquet_with_paths(root: Path, images) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True, exist_ok=True)
    for shard in range(2):
        part = list(enumerate(images))[shard * 6:(shard + 1) * 6]
        table = pa.table({"image": [{"bytes": d, "path": f"img/{i:05d}.jpg"} for i, (d, _, _) in part],
                          "label": pa.array([label for _, (_, label, _) in part], pa.int64())})
        pq.write_table(table, root / f"train-{shard:05d}-of-00002.parquet", row_group_size=4)


def test_a_streamed_run_fine_tunes_on_exactly_the_listed_images(tmp_path):
    from simclr_core.train import train

    photos = image_set(30)
    write_folder(tmp_path / "data", photos)
    write_folder(tmp_path / "data", image_set(12, seed=1), split="test")
    listed = tmp_path / "subset.txt"
    listed.write_text("".join(f"{i:05d}{photos[i][2]}\n" for i in (1, 2, 4, 7, 13)))
    cfg = stream_config(tmp_path / "data", "imagefolder", max_steps=1, **{
        "eval.protocols": ("finetune",), "eval.finetune_fractions": (0.1,), "eval.finetune_epochs": 1,
        "eval.finetune_batch_size": 2, "eval.finetune_subset_files": (str(listed),)})
    metrics = train(cfg, tmp_path / "run")
    assert metrics["data_loader"] == "stream" and metrics["finetune_examples_10pct"] == 5
    listed.write_text(f"00001{photos[1][2]}\nnope.jpg\n")                       # refused before pretraining
    with pytest.raises(ConfigError, match="nope.jpg"):
        train(cfg, tmp_path / "other")
    assert not (tmp_path / "other" / "checkpoint.pt").exists()


def test_probe_views_of_streamed_originals_match_the_resident_views(tmp_path):
    """Squares of the view's side: the same crops, flips and task labels from the same draws; pixels within one
    grey level where the task keeps them (the streamed crop resizes uint8, the resident one floats; colour jitter
    and Sobel filtering amplify that difference)."""
    from simclr_core.config import AugmentConfig
    from simclr_core.evaluate.transform_probe import TASKS, labelled_views

    write_folder(tmp_path / "data", _squares(12, 24))
    split = open_encoded(DataConfig(dataset="imagefolder", data_dir=str(tmp_path / "data")), "train")
    stream = EvalImages(split, 24, 1.0, torch.device("cpu"), threads=1)
    resident = torch.cat(list(stream.batches(64)))
    [(originals, _)] = list(stream.originals(torch.arange(12)).batches([torch.arange(12)]))
    for task in TASKS:
        x_res, y_res = labelled_views(resident, task, AugmentConfig(), torch.Generator().manual_seed(5))
        x_str, y_str = labelled_views(originals, task, AugmentConfig(), torch.Generator().manual_seed(5), 24)
        assert torch.equal(y_res, y_str), task
        if task in ("rotation", "noise"):
            assert (x_res - x_str).abs().max() <= 1.5 / 255 + 1e-6, task


def test_a_streamed_run_probes_transformations_on_crops_of_photos_of_every_size(tmp_path):
    from simclr_core.train import train

    write_folder(tmp_path / "data", image_set(24))
    write_folder(tmp_path / "data", image_set(12, seed=1), split="test")
    cfg = stream_config(tmp_path / "data", "imagefolder", max_steps=1, **{
        "eval.protocols": ("transform_probe",), "eval.transform_tasks": ("rotation", "sobel"),
        "eval.transform_epochs": 2})
    metrics = train(cfg, tmp_path / "run")
    assert metrics["data_loader"] == "stream"
    for task in ("rotation", "sobel"):
        assert 0 <= metrics[f"transform_{task}_h"] <= 100 and 0 <= metrics[f"transform_{task}_gh"] <= 100
    assert metrics["unreadable_eval_images"] == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_streamed_fine_tuning_and_probe_run_on_the_gpu(tmp_path):
    """nvjpeg-decoded originals stay on the GPU; the crops of fine-tuning and of the probe are cut there."""
    from simclr_core.augment import build_augmentation
    from simclr_core.config import AugmentConfig
    from simclr_core.evaluate.transform_probe import transform_probe_eval
    from simclr_core.models import projection_head

    write_folder(tmp_path / "data", image_set(20))
    write_folder(tmp_path / "data", image_set(10, seed=1), split="test")
    data = DataConfig(dataset="imagefolder", data_dir=str(tmp_path / "data"))
    cuda = torch.device("cuda")
    train_split = EvalImages(open_encoded(data, "train"), 32, 8 / 7, cuda, threads=2)
    test_split = EvalImages(open_encoded(data, "test"), 32, 8 / 7, cuda, threads=2)
    [(originals, _)] = list(train_split.originals(torch.arange(4)).batches([torch.arange(4)]))
    assert all(image.is_cuda for image in originals)
    crop = build_augmentation(AugmentConfig(ops=("crop",)), 32, MEAN, STD)
    encoder = _encoder().to(cuda)
    metrics = finetune_eval(encoder, train_split, train_split.labels, test_split, test_split.labels, mean=MEAN,
                            std=STD, num_classes=3, label_fraction=0.5, epochs=1, batch_size=4, lr=0.05, seed=0,
                            augment=lambda images, g: crop.views_from_originals(images, g)[0])
    assert 0 <= metrics["finetune_top1"] <= 100
    head = projection_head("nonlinear", encoder.feature_dim).to(cuda)
    probed = transform_probe_eval(encoder, head, train_split, test_split, mean=MEAN, std=STD, tasks=("rotation",),
                                  epochs=2)
    assert 0 <= probed["transform_rotation_h"] <= 100


def test_a_streamed_run_trains_its_linear_classifier_on_crops_of_the_originals(tmp_path, monkeypatch):
    from simclr_core.evaluate import protocols as protocols_module
    from simclr_core.train import train

    sizes = []

    def linear_eval_augmented(*args, augment, _run=protocols_module.linear_eval_augmented, **kwargs):
        def recorded(originals, generator):
            sizes.extend(tuple(image.shape[-2:]) for image in originals)   # a list of whole images, each its size
            return augment(originals, generator)
        return _run(*args, augment=recorded, **kwargs)

    monkeypatch.setattr(protocols_module, "linear_eval_augmented", linear_eval_augmented)
    photos = image_set(30)
    write_folder(tmp_path / "data", photos)
    write_folder(tmp_path / "data", image_set(12, seed=1), split="test")
    cfg = stream_config(tmp_path / "data", "imagefolder", max_steps=2, **{
        "eval.protocols": ("linear",), "eval.linear_augment": True, "eval.linear_epochs": 2,
        "eval.linear_batch_size": 8})
    metrics = train(cfg, tmp_path / "run")
    assert metrics["data_loader"] == "stream"
    assert len(sizes) == 2 * len(photos) and len(set(sizes)) > 1 and max(sizes) > (cfg.data.image_size,) * 2
    assert 0 <= metrics["linear_top1"] <= 100 and metrics["linear_top5"] == 100.0          # 3 classes
