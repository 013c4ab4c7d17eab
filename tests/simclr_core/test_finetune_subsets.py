"""Which labelled images fine-tuning trains on: class-balanced draws (round(fraction x n_c) per class, at least one,
different per seed), fixed subsets read from files (eval.finetune_subset_files: by stored path or by row), and the
errors of bad fractions and bad subset files, raised at config validation or before pretraining."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from simclr_core.config import RunConfig
from simclr_core.data.image_paths import image_paths
from simclr_core.evaluate.finetune import balanced_subset, finetune_eval
from simclr_core.evaluate.subset_files import official_subsets, read_subset_file, subset_positions
from simclr_core.validation import ConfigError

# Stored paths as the CIFAR-10 parquet files hold them: file names repeat across class folders.
PATHS = ("airplane/0000.jpg", "airplane/0001.jpg", "cat/0000.jpg", "cat/0007.jpg", "dog/0003.jpg", None)
ROWS = np.array([0, 3, 4, 9, 10, 12])            # the held images are these rows of a 15-row split
TOTAL = 15


def write(tmp_path: Path, text: str, name: str = "subset.txt") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def positions(tmp_path: Path, text: str, limit_note: str = "") -> list[int]:
    return subset_positions(read_subset_file(write(tmp_path, text)), PATHS, ROWS, TOTAL, limit_note).tolist()


# ---- class-balanced draws ----------------------------------------------------------------------------------
@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.25, 0.5, 1.0])
def test_every_class_gets_round_fraction_times_its_size_and_at_least_one(fraction):
    generator = torch.Generator().manual_seed(3)
    sizes = torch.randint(1, 400, (12,), generator=generator)
    sizes[4] = 0                                                   # an absent class gets none
    labels = torch.arange(12).repeat_interleave(sizes)
    labels = labels[torch.randperm(labels.numel(), generator=generator)]
    subset = balanced_subset(labels, fraction, num_classes=12, seed=0)
    expected = [0 if n == 0 else max(1, int(np.floor(n * fraction + 0.5))) for n in sizes.tolist()]
    assert torch.bincount(labels[subset], minlength=12).tolist() == expected


def test_seeds_draw_different_images_so_their_union_exceeds_one_draw():
    labels = torch.arange(10).repeat_interleave(500)
    draws = [set(balanced_subset(labels, 0.1, num_classes=10, seed=s).tolist()) for s in range(4)]
    assert all(len(d) == 500 for d in draws)
    assert len(set().union(*draws)) > 1.5 * 500
    assert len({frozenset(d) for d in draws}) == 4


# ---- subsets from files ------------------------------------------------------------------------------------
def test_a_names_file_selects_exactly_the_listed_images_by_path_or_path_tail(tmp_path):
    assert positions(tmp_path, "cat/0007.jpg\n\n0003.jpg\nairplane/0000.jpg\n") == [0, 3, 4]


def test_a_rows_file_selects_the_held_images_of_those_rows(tmp_path):
    assert positions(tmp_path, "12\n0\n4\n") == [0, 2, 5]


@pytest.mark.parametrize("text,message", [
    ("", "lists no image"),
    ("3\nairplane/0000.jpg\n", r"line 2: 'airplane/0000.jpg' is not a row number"),
    ("4\n9\n04\n", r"line 3: '04' repeats line 1"),
    ("cat/0007.jpg\ncat/0007.jpg\n", r"line 2: 'cat/0007.jpg' repeats line 1"),
])
def test_malformed_files_are_refused_naming_the_line(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        read_subset_file(write(tmp_path, text))


@pytest.mark.parametrize("text,message", [
    ("cat/0007.jpg\nbird/0001.jpg\n", r"subset.txt line 2: 'bird/0001.jpg' is not among the 6 training images this "
                                      r"run holds \(limit note\); each line must name one by its stored path"),
    ("0000.jpg\n", r"line 1: '0000.jpg' matches 2 training images \('airplane/0000.jpg', 'cat/0000.jpg'"),
    ("jpg\n", r"line 1: 'jpg' is not among"),              # a tail must end at a '/'
    ("/cat/0007.jpg\ncat/0007.jpg\n", r"line 2: 'cat/0007.jpg' is the image of line 1"),
    ("3\n15\n", r"line 2: row 15 is outside the training split's 15 rows; valid rows lie in \[0, 14\]"),
    ("3\n5\n", r"line 2: row 5 is not among the 6 training images this run holds \(limit note\)"),
])
def test_listed_images_the_split_does_not_hold_are_refused_naming_file_and_line(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        positions(tmp_path, text, limit_note=" (limit note)")


def test_names_are_refused_for_a_split_that_stores_no_paths(tmp_path):
    listed = read_subset_file(write(tmp_path, "cat/0007.jpg\n"))
    with pytest.raises(ConfigError, match="stores no image paths; give each image by its row"):
        subset_positions(listed, (None,) * len(ROWS), ROWS, TOTAL)


def test_the_embedded_split_finds_the_images_a_file_names(tmp_path):
    cfg = RunConfig().with_overrides({"data.dataset": "cifar10_subset", "data.train_limit": 512})
    held = image_paths(cfg.data, "train")
    assert len(held) == 512 and held.total == 5000 and np.all(np.diff(held.rows) > 0)
    chosen = [held.paths[i] for i in (3, 40, 41, 500)]
    rows = [int(held.rows[i]) for i in (7, 8)]
    files = (write(tmp_path, "\n".join(chosen), "names.txt"), write(tmp_path, f"{rows[1]}\n{rows[0]}\n", "rows.txt"))
    cfg = cfg.with_overrides({"eval.protocols": ("finetune",), "eval.finetune_subset_files": files}).validate()
    by_names, by_rows = official_subsets(cfg)
    assert by_names.tolist() == [3, 40, 41, 500] and by_rows.tolist() == [7, 8]
    not_held = next(r for r in range(5000) if r not in set(held.rows.tolist()))
    cfg = cfg.with_overrides({"eval.finetune_subset_files": (files[0], write(tmp_path, f"{not_held}\n", "x.txt"))})
    with pytest.raises(ConfigError, match=rf"x.txt line 1: row {not_held} is not among the 512 training images this "
                                          r"run holds \(data.train_limit=512 keeps 512 of 5000\)"):
        official_subsets(cfg)


def test_finetune_trains_on_exactly_the_given_subset():
    images = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(4).repeat(10)
    seen = []

    def record(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        seen.append(batch.clone())
        return batch.float() / 255

    encoder = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    subset = torch.tensor([5, 0, 17, 33, 2, 8])
    finetune_eval(encoder, images, labels, images[:8], labels[:8], mean=(0.5,) * 3, std=(0.25,) * 3, num_classes=4,
                  label_fraction=0.1, epochs=1, batch_size=6, lr=0.01, seed=0, augment=record, subset=subset)
    (batch,) = seen
    assert sorted(map(bytes, batch.numpy())) == sorted(map(bytes, images[subset].numpy()))
    with pytest.raises(ConfigError, match=r"subset index 40 is outside the 40 training examples"):
        finetune_eval(encoder, images, labels, images[:8], labels[:8], mean=(0.5,) * 3, std=(0.25,) * 3,
                      num_classes=4, label_fraction=0.1, epochs=1, batch_size=6, lr=0.01, seed=0,
                      subset=torch.tensor([1, 40]))


# ---- config validation -------------------------------------------------------------------------------------
@pytest.mark.parametrize("fractions,message", [
    ((0.0,), r"eval.finetune_fractions=0.0 is out of range; valid values lie in \(0, 1\]"),
    ((0.1, 1.5), r"eval.finetune_fractions=1.5 is out of range; valid values lie in \(0, 1\]"),
    ((-0.01,), r"eval.finetune_fractions=-0.01 is out of range"),
    ((), r"eval.finetune_fractions=\(\) is empty but eval.protocols runs 'finetune'"),
    ((0.1, 0.1), r"repeats a fraction"),
])
def test_bad_label_fractions_fail_config_validation(fractions, message):
    cfg = RunConfig().with_overrides({"eval.protocols": ("finetune",), "eval.finetune_fractions": fractions})
    with pytest.raises(ConfigError, match=message):
        cfg.validate()


def test_subset_files_are_checked_at_config_validation(tmp_path):
    good = write(tmp_path, "cat/0007.jpg\n")
    base = RunConfig().with_overrides({"eval.protocols": ("finetune",), "eval.finetune_fractions": (0.01, 0.1)})
    with pytest.raises(ConfigError, match=r"gives 1 file\(s\) for the 2 label fraction\(s\)"):
        base.with_overrides({"eval.finetune_subset_files": (good,)}).validate()
    missing = str(tmp_path / "1percent.txt")
    with pytest.raises(ConfigError, match=rf"eval.finetune_subset_files: '{missing}' is not a file"):
        base.with_overrides({"eval.finetune_subset_files": (good, missing)}).validate()
    bad = write(tmp_path, "7\n8\nseven\n", "bad.txt")
    with pytest.raises(ConfigError, match=r"bad.txt line 3: 'seven' is not a row number"):
        base.with_overrides({"eval.finetune_subset_files": (good, bad)}).validate()
    base.with_overrides({"eval.finetune_subset_files": (good, good)}).validate()
