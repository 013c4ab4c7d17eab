"""Start-up on a large image folder: seconds from nothing to the index a run streams, in one process.

A run on an ImageFolder tree (ImageNet's train/<class>/<image>.JPEG layout) locates its splits, indexes them and
records which images it read (final.json's data_identity). The launcher's check (train.preflight) does the first
two before the run starts, and the run (open_feed) does them again in the same process. This script makes an
ImageNet-shaped tree of empty files (nothing is decoded here, so their contents do not matter; --classes x
--train-per-class + --test-per-class files) and times, one after another in one fresh process:
  preflight       train.preflight(cfg): locating both splits, their indexes, the batch and class checks;
  open_feed       the run's own open of the same data (the streamed path);
  data_identity   the hash of every file's name and size under the folder, taken at the end of a run;
  open_feed again a second run of a grid in the same process.
ImageNet has 1000 classes of ~1,281 training and 50 validation images; the default is a sixth of that.

    .venv/bin/python benchmarks/bench_folder_start.py [--classes 1000] [--train-per-class 213] [--keep DIR]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import simclr_core  # noqa: F401  (first: huge pages before torch allocates)
import torch
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402

from simclr_core.config import RunConfig  # noqa: E402


def make_tree(root: Path, classes: int, train: int, test: int) -> None:
    """root/{train,val}/<class>/<i>.JPEG, empty files; folders aged past the racy window (folder_memo.py)."""
    for split, count in (("train", train), ("val", test)):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                (folder / f"n{c:08d}_{i}.JPEG").touch()
    old = time.time() - 60
    for folder, _, _ in os.walk(root):
        os.utime(folder, (old, old))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--train-per-class", type=int, default=213)
    p.add_argument("--test-per-class", type=int, default=8)
    p.add_argument("--keep", help="make (or reuse) the tree in this folder instead of a temporary one")
    args = p.parse_args(argv)

    from simclr_core.data.feed import data_identity, open_feed
    from simclr_core.train import train

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp) / "imagefolder"
        files = args.classes * (args.train_per_class + args.test_per_class)
        if not root.exists():
            print(f"making {files:,} empty files in {root} ...", flush=True)
            make_tree(root, args.classes, args.train_per_class, args.test_per_class)
        cfg = RunConfig().with_overrides({
            "data.dataset": "imagefolder", "data.data_dir": str(root), "data.loader": "stream",
            "data.image_size": 224, "batch_size": 256, "epochs": 1, "eval.protocols": ("knn",)})
        cpu = torch.device("cpu")
        print("\n".join(machine.describe(cpu)))
        print(f"load before: {machine.load_average()}")
        rows = []
        for name, work in (("preflight", lambda: train.preflight(cfg)),
                           ("open_feed", lambda: open_feed(cfg.data, need_test=True, device=cpu)),
                           ("data_identity", lambda: data_identity(cfg.data)),
                           ("open_feed again", lambda: open_feed(cfg.data, need_test=True, device=cpu))):
            start = time.perf_counter()
            work()
            rows.append((name, time.perf_counter() - start))
        total = sum(seconds for _, seconds in rows)
        print(f"\n{files:,} files ({args.classes} classes), one process, in order:\n")
        print(tabulate([(n, f"{s:.2f}") for n, s in rows] + [("total", f"{total:.2f}")],
                       headers=["step", "seconds"], tablefmt="github"))


if __name__ == "__main__":
    main()
