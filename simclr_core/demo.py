"""The README's main job: pretrain SimCLR on the embedded CIFAR-10 subset and show that it learned.

    python -m simclr_core.demo [--epochs 15] [--run-dir runs/demo] [key=value ...]
    torchrun --nproc_per_node 2 -m simclr_core.demo --run-dir runs/demo-2proc     (the result prints once)

Runs on the subset shipped in the repo (5,000 train / 1,000 test images, no network), compares the kNN
accuracy of the trained encoder with the same encoder at random initialisation, and prints both.
Re-running resumes a cut-off run and reuses a finished one.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from simclr_core.atomic_files import disk_trouble, nearest_existing
from simclr_core.config import RunConfig
from simclr_core.data import load_images
from simclr_core.evaluate import knn_eval
from simclr_core.models import build_model
from simclr_core.precision import autocast_dtype, resolve_precision
from simclr_core.train import train
from simclr_core.validation import ConfigError
from simclr_core.warning_format import print_warnings_on_one_line

# Measured on the 2-core reference CPU while other jobs shared it: 345 s wall in all on a first run (native builds
# included), kNN top-1 23.7% at random initialisation -> 39.0% after these 15 epochs (see README).
DEMO_OVERRIDES = {
    "data.dataset": "cifar10_subset",
    "encoder.name": "resnet18", "encoder.width": 0.25,
    "batch_size": 256, "epochs": 15, "optim.warmup_epochs": 1,
    "loss.temperature": 0.2, "augment.color_strength": 0.5,
    "eval.protocols": ("knn",), "log_every_steps": 5, "checkpoint_every_steps": 50,
}


def demo_config(extra: dict[str, str] | None = None) -> RunConfig:
    return RunConfig().with_overrides({**DEMO_OVERRIDES, **(extra or {})}).validate()


def random_init_knn(cfg: RunConfig) -> float:
    """kNN top-1 of the untrained encoder built exactly as train() builds it (same seed)."""
    train_set, test_set = load_images(cfg.data, "train"), load_images(cfg.data, "test")
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.encoder, cfg.head, cfg.data.image_size or train_set.images.shape[-1])
    dtype = autocast_dtype(resolve_precision(cfg.precision, torch.device("cpu")))
    result = knn_eval(model.encoder, train_set.images, train_set.labels, test_set.images, test_set.labels,
                      mean=train_set.mean, std=train_set.std, num_classes=train_set.num_classes,
                      k=cfg.eval.knn_k, temperature=cfg.eval.knn_temperature, autocast_dtype=dtype)
    return result["knn_top1"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=DEMO_OVERRIDES["epochs"],
                        help=f"pretraining epochs (default {DEMO_OVERRIDES['epochs']})")
    parser.add_argument("--run-dir", default="runs/demo", help="where metrics, checkpoint and final.json go")
    parser.add_argument("overrides", nargs="*", help="config overrides as key=value, e.g. loss.temperature=0.5")
    args = parser.parse_args(argv)
    print_warnings_on_one_line()
    bad = [item for item in args.overrides if "=" not in item or item.startswith("=")]
    if bad:
        parser.error(f"override {bad[0]!r} must look like key=value, e.g. loss.temperature=0.5")
    extra = {"epochs": args.epochs, **dict(item.split("=", 1) for item in args.overrides)}
    try:
        cfg = demo_config(extra)
    except ConfigError as exc:
        parser.exit(2, f"error: {exc}\n")
    run_dir = Path(args.run_dir).expanduser()
    blocking = nearest_existing(run_dir)
    if not blocking.is_dir():         # before the random-init kNN is spent on a run that cannot be written
        where = "is a file" if blocking == run_dir else f"lies under {blocking}, which is a file"
        parser.exit(2, f"error: --run-dir {args.run_dir} {where}; name a folder for the run (created if missing)\n")
    start = time.perf_counter()
    before = random_init_knn(cfg)
    try:
        metrics = train(cfg, Path(args.run_dir))
    except ConfigError as exc:          # e.g. --run-dir holds a checkpoint of another config, or a damaged one
        parser.exit(2, f"error: {exc}\n")
    except OSError as exc:
        trouble = disk_trouble(exc.errno)
        if trouble is None:
            raise
        parser.exit(1, f"error: {exc}\n  {trouble[0]}: {trouble[1]}, or choose another --run-dir; the same command "
                       f"then resumes from the last checkpoint\n")
    if int(os.environ.get("RANK", "0")) != 0:    # under torchrun every process gets the metrics; one prints
        return
    print(json.dumps({"random_init_knn_top1": before, "pretrained_knn_top1": metrics["knn_top1"],
                      "images_per_s": metrics["images_per_s"], "wall_s": round(time.perf_counter() - start, 1),
                      "run_dir": args.run_dir}, indent=2))


if __name__ == "__main__":
    main()
