"""final.json counts unreadable images, not failed reads, the same way on both data paths: an image that cannot be
decoded is one image however many epochs, kNN checks or fine-tuning epochs read it, and the 1% verdict judges
distinct images. Each class's images are one solid colour (test_resident_bad_images.py's builders)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from simclr_core.config import DataConfig
from simclr_core.data.bad_images import MIN_BAD_FOR_VERDICT, BadImages
from simclr_core.data.encoded import open_encoded
from simclr_core.data.stream import Decoder, StreamedBatches, decode_batch

from test_resident_bad_images import rows, write_folder, write_parquet


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))


def run_config(data: Path, loader: str, **overrides):
    from simclr_core.config import RunConfig

    return RunConfig().with_overrides({
        "data.dataset": "imagefolder", "data.data_dir": str(data), "data.loader": loader, "data.image_size": 12,
        "encoder.width": 0.25, "batch_size": 8, "epochs": 3, "optim.warmup_epochs": 0, "log_every_steps": 3,
        "checkpoint_every_steps": 9, "eval.protocols": ("knn",), "eval.knn_k": 3, "eval.knn_every_epochs": 1,
        "seed": 0, **overrides})


@pytest.mark.parametrize("loader", ["stream", "resident"])
def test_a_run_counts_each_unreadable_image_once_whatever_reads_it_again(tmp_path, loader):
    """2 of 24 training images and 1 of 9 test images are cut short; 3 epochs, a kNN check after each (each reads
    both splits): final.json says 2 and 1, as many images as could not be read."""
    from simclr_core.train import train

    write_folder(tmp_path / "data", rows(24, bad={5, 17}))
    write_folder(tmp_path / "data", rows(9, bad={2}), split="test")
    with pytest.warns(UserWarning, match="unreadable image"):
        metrics = train(run_config(tmp_path / "data", loader), tmp_path / "run")
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    assert final["data_loader"] == loader
    assert (final["unreadable_images"], final["unreadable_eval_images"]) == (2, 1) == \
        (metrics["unreadable_images"], metrics["unreadable_eval_images"])
    if loader == "stream":      # the reads of training batches: each image of the 3 epochs, the 2 bad ones 3 times
        assert (final["images_read"], final["unreadable_reads"]) == (72, 6)


def test_a_training_stream_warns_of_an_unreadable_image_once_and_counts_it_once(tmp_path):
    write_parquet(tmp_path / "data", rows(24, bad={5, 17}))
    split = open_encoded(DataConfig(dataset="parquet", data_dir=str(tmp_path / "data")), "train")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with StreamedBatches(split, seed=0, local_batch=8, rank=0, world=1, steps_per_epoch=3, start_step=0,
                             stop_step=9, device=torch.device("cpu"), threads=1) as stream:
            assert len([images for _, images in stream]) == 9
    said = [str(w.message) for w in caught if "unreadable image" in str(w.message)]
    assert len(said) == 2 and {m.split(" (")[0] for m in said} == {f"skipping an unreadable image: row {r} of "
                                                                  f"{tmp_path / 'data' / 'train.parquet'}"
                                                                  for r in (5, 17)}
    assert (stream.bad.bad, stream.bad.seen, stream.bad.reads, stream.bad.failed_reads) == (2, 24, 72, 6)


def test_the_verdict_judges_distinct_images_not_reads(tmp_path):
    """1% of 1000 images is unreadable, which is not more than 1%: reading those images again (a second epoch, a
    second evaluation pass) must not make it so."""
    count, bad_rows = 1000, set(range(MIN_BAD_FOR_VERDICT))
    write_parquet(tmp_path / "data", rows(count, bad=bad_rows))
    split = open_encoded(DataConfig(dataset="parquet", data_dir=str(tmp_path / "data")), "train")
    decoder, bad = Decoder(torch.device("cpu"), 1), BadImages()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decode_batch(split, np.arange(count), decoder, bad, leave_out=True)       # a whole pass: 10 of 1000
        decode_batch(split, np.array(sorted(bad_rows)), decoder, bad, leave_out=True)   # read again
    assert (bad.bad, bad.seen, bad.reads, bad.failed_reads) == (10, 1000, 1010, 20)


def test_processes_that_each_met_an_unreadable_image_count_it_once(tmp_path):
    """Two processes (here two feeds of rank 0 and 1, and a gather that hands each the other's rows, as train()'s
    collective does) read disjoint halves of each epoch, so over 4 epochs both meet the same unreadable images."""
    from simclr_core.data.feed import open_feed

    write_folder(tmp_path / "data", rows(24, bad={5, 17}))
    cfg = run_config(tmp_path / "data", "stream").data
    feeds = [open_feed(cfg, need_test=False, device=torch.device("cpu")) for _ in range(2)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for rank, feed in enumerate(feeds):
            for _ in feed.batches(seed=0, rank=rank, world=2, local_batch=4, steps_per_epoch=3, start_step=0,
                                  stop_step=12, device=torch.device("cpu")):
                pass
    per_process = [set(feed._streams[0].bad.rows) for feed in feeds]
    assert len(per_process[0] | per_process[1]) == 2 and per_process[0] & per_process[1]    # summed: 3 or 4
    handed: list = []
    feeds[1].stats(gather=lambda item: handed.append(item) or [item])
    stats = feeds[0].stats(gather=lambda item: [item, handed.pop(0)])
    assert stats["unreadable_images"] == 2 and not handed
    mine, theirs = (feed._streams[0].bad for feed in feeds)     # the reads of both processes, summed
    assert stats["images_read"] == mine.reads + theirs.reads == 96
    assert stats["unreadable_reads"] == mine.failed_reads + theirs.failed_reads > 0


def small_encoder() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())


@pytest.mark.parametrize("loader", ["stream", "resident"])
def test_fine_tuning_counts_the_labelled_images_it_could_read(tmp_path, loader):
    """All 24 training images labelled (fraction 1), 2 of them cut short: it fine-tunes on 22, on both paths (the
    streamed path draws its subset over every row and says how many of it could not be read)."""
    from simclr_core.data.feed import open_feed
    from simclr_core.evaluate.protocols import PROTOCOLS

    write_folder(tmp_path / "data", rows(24, bad={5, 17}))
    write_folder(tmp_path / "data", rows(9, bad={2}), split="test")
    cfg = run_config(tmp_path / "data", loader, **{"eval.protocols": ("finetune",), "eval.finetune_fractions": (1.0,),
                                                   "eval.finetune_epochs": 2, "eval.finetune_batch_size": 8})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        feed = open_feed(cfg.data, need_test=True, device=torch.device("cpu"))
        metrics = PROTOCOLS["finetune"].run(small_encoder(), feed, cfg, None)
    said = [str(w.message) for w in caught]
    assert metrics["finetune_examples_100pct"] == 22
    if loader == "stream":
        assert metrics["finetune_unreadable_100pct"] == 2
        assert any(m.startswith("2 of the 24 labelled images of the 100pct subset could not be decoded") for m in said)
    else:
        assert "finetune_unreadable_100pct" not in metrics


def streamed(root: Path, images, split: str = "train"):
    from simclr_core.data.stream import EvalImages

    write_parquet(root, images, split)
    return EvalImages(open_encoded(DataConfig(dataset="parquet", data_dir=str(root)), split), 12, 1.0,
                      torch.device("cpu"), threads=1)


def probed(images, batch_size: int = 4):
    """probe_features of the rotation task: (h, g(h), labels)."""
    from simclr_core.config import AugmentConfig
    from simclr_core.evaluate.transform_probe import probe_features

    return probe_features(small_encoder(), torch.nn.Identity(), images, "rotation", augment=AugmentConfig(),
                          generator=torch.Generator().manual_seed(0), mean=(0.5,) * 3, std=(0.25,) * 3,
                          batch_size=batch_size, device=torch.device("cpu"))


def test_the_transformation_probe_leaves_an_unreadable_image_out_not_a_batch_mate_twice(tmp_path):
    damaged = streamed(tmp_path / "damaged", rows(9, bad={5}))
    with pytest.warns(UserWarning, match=r"row 5 of \S+ .*left out of the evaluation, with its label"):
        h, z, labels = probed(damaged)
    assert len(h) == len(z) == len(labels) == 8 and damaged.bad.bad == 1


def test_the_transformation_probe_of_a_split_without_its_unreadable_image_is_that_of_the_clean_split(tmp_path):
    """The last image, alone in its batch, is cut short: the probe's features and labels are those of the split
    written without it (an empty batch is skipped, not an error)."""
    images = rows(9, bad={8})
    damaged, clean = streamed(tmp_path / "damaged", images), streamed(tmp_path / "clean", images[:8])
    with pytest.warns(UserWarning, match="left out of the evaluation"):
        with_damage = probed(damaged)
    assert all(torch.equal(a, b) for a, b in zip(with_damage, probed(clean)))


@pytest.mark.parametrize("loader", ["stream", "resident"])
def test_transfer_counts_the_images_it_used_and_each_unreadable_one_once(tmp_path, loader):
    """1 of 12 training and 1 of 9 test images of the transfer dataset are cut short; linear evaluation reads both
    splits once, fine-tuning the training split at each of its 2 epochs: 11 and 8 images used, 2 unreadable."""
    from simclr_core.config import RunConfig
    from simclr_core.evaluate.transfer import run_transfer

    write_folder(tmp_path / "transfer", rows(12, bad={4}))
    write_folder(tmp_path / "transfer", rows(9, bad={2}), split="test")
    cfg = RunConfig().with_overrides({
        "eval.transfer_dataset": "imagefolder", "eval.transfer_data_dir": str(tmp_path / "transfer"),
        "eval.transfer_loader": loader, "eval.linear_epochs": 2, "eval.finetune_epochs": 2,
        "eval.finetune_batch_size": 4})
    with pytest.warns(UserWarning, match="unreadable image"):
        metrics = run_transfer(small_encoder(), cfg, image_size=12, mean=(0.5,) * 3, std=(0.25,) * 3)
    assert metrics["transfer_loader"] == loader
    assert (metrics["transfer_train_images"], metrics["transfer_test_images"],
            metrics["transfer_unreadable_images"]) == (11, 8, 2)

