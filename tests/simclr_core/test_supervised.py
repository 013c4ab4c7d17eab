"""method=supervised: the paper's supervised baselines trained by train() (models/supervised.py)."""
import json

import numpy as np
import pytest
import torch

from simclr_core.checkpoint import load_checkpoint
from simclr_core.config import RunConfig
from simclr_core.data.stream import BadImages, Decoder, decode_batch
from simclr_core.train import train
from simclr_core.validation import ConfigError

from first_step_reference import reference_first_step_loss, reference_first_step_supervised_loss
from test_train import TINY, losses, train_in_two_processes

SUPERVISED = {**TINY, "method": "supervised", "eval.protocols": ("supervised",)}


def supervised(**overrides) -> RunConfig:
    return RunConfig().with_overrides({**SUPERVISED, **overrides})


@pytest.mark.parametrize("overrides, named", [
    ({"method": "byol"}, "method='byol'"),
    ({"method": "supervised", "augment.local_crops": 2}, "augment.local_crops=2"),
    ({"method": "supervised", "augment.one_branch": True}, "augment.one_branch=True"),
    ({"eval.protocols": ("knn", "supervised")}, "eval.protocols 'supervised'"),
    ({"method": "supervised", "eval.protocols": ("transform_probe",)}, "eval.protocols 'transform_probe'"),
])
def test_a_method_and_its_settings_are_checked_naming_the_value(overrides, named):
    with pytest.raises(ConfigError) as caught:
        RunConfig().with_overrides(overrides).validate()
    assert named in str(caught.value)
    if "byol" in named:
        assert "'simclr'" in str(caught.value) and "'supervised'" in str(caught.value)


def test_the_first_step_is_cross_entropy_of_the_classifier_on_one_view_per_image(tmp_path):
    cfg = supervised(max_steps=1, precision="no")
    train(cfg, tmp_path / "run")
    logged = losses(tmp_path / "run")[0][1]
    assert logged == pytest.approx(reference_first_step_supervised_loss(cfg, world=1, global_bn=True), rel=1e-4)
    # Not the contrastive loss of the same config's SimCLR run.
    simclr = cfg.with_overrides({"method": "simclr", "eval.protocols": ()})
    assert abs(logged - reference_first_step_loss(simclr, world=1, global_bn=True)) > 0.1


def test_a_supervised_run_learns_its_labels_and_is_scored_by_its_own_classifier(tmp_path):
    """64 images seen whole (crop of the full image, flip) for 40 epochs: the network memorises their labels, which
    it cannot do unless every step's labels are its images' own (the logged loss would stay near log 10 = 2.3)."""
    memorise = {"data.train_limit": 64, "epochs": 40, "augment.ops": ("crop",), "augment.crop_scale": (1.0, 1.0),
                "augment.crop_ratio": (1.0, 1.0), "optim.weight_decay": 0.0, "optim.base_lr": 5.0,
                "eval.protocols": ("knn", "supervised")}
    metrics = train(supervised(**memorise), tmp_path / "run")
    assert set(metrics) >= {"supervised_top1", "supervised_top5", "knn_top1"}
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert "train_top1" in rows[0] and "contrastive_acc" not in rows[0]
    assert rows[0]["loss"] > 2.0 and max(r["loss"] for r in rows[-4:]) < 0.6
    assert min(r["train_top1"] for r in rows[-4:]) >= 90
    checkpoint = load_checkpoint(tmp_path / "run")
    assert checkpoint["model"]["head.weight"].shape[0] == 10


def test_a_resumed_supervised_run_matches_an_uninterrupted_one(tmp_path):
    full = train(supervised(), tmp_path / "full")
    train(supervised(max_steps=3), tmp_path / "cut")
    resumed = train(supervised(), tmp_path / "cut")
    torch.testing.assert_close(torch.tensor(losses(tmp_path / "cut")), torch.tensor(losses(tmp_path / "full")),
                               rtol=0, atol=0)
    assert resumed["supervised_top1"] == full["supervised_top1"]


@pytest.mark.distributed
@pytest.mark.slow
def test_two_supervised_processes_equal_one_process_on_the_whole_batch(tmp_path):
    cfg = supervised(max_steps=2, precision="no", **{"encoder.global_bn": True})
    results = train_in_two_processes(cfg, tmp_path / "run", tmp_path)
    assert results[0]["metrics"]["supervised_top1"] == results[1]["metrics"]["supervised_top1"]
    logged = losses(tmp_path / "run")[0][1]
    assert logged == pytest.approx(reference_first_step_supervised_loss(cfg, world=2, global_bn=True), rel=1e-4)
    assert abs(logged - reference_first_step_supervised_loss(cfg, world=2, global_bn=False)) > 1e-4


class _Split:
    """An EncodedSplit stand-in with two unreadable rows: reads give their bytes, labels are row * 10."""

    def __init__(self, images: list[bytes | None]):
        self.images = images
        self.labels = np.arange(len(images)) * 10

    def read(self, indices):
        return [self.images[i] if self.images[i] is not None else OSError(f"row {i} unreadable")
                for i in indices]

    def where(self, row: int) -> str:
        return f"row {row}"


def test_a_replaced_unreadable_image_brings_its_own_label():
    from torchvision.io import encode_png

    pngs = [encode_png(torch.full((3, 8, 8), 30 * i, dtype=torch.uint8)).numpy().tobytes() for i in range(6)]
    split = _Split([pngs[0], None, pngs[2], pngs[3], None, pngs[5]])
    bad, rows = BadImages(), []
    images = decode_batch(split, np.array([5, 1, 2, 4, 3]), Decoder(torch.device("cpu"), threads=1), bad, rows=rows)
    assert bad.bad == 2 and len(images) == len(rows) == 5
    for image, row in zip(images, rows):
        assert split.images[row] is not None
        assert int(image[0, 0, 0]) == 30 * row          # each image is its row's: the label split.labels[row] fits
    assert rows[0] == 5 and rows[2] == 2 and rows[4] == 3 and rows[1] in (5, 2, 3) and rows[3] in (5, 2, 3)
