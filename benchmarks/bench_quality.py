"""Quality per CPU-hour: pretrain a named recipe on all of CIFAR-10 within a wall-clock budget, report kNN top-1.

Issue 5's moonshot: the `cpu` recipe should reach >= 70% kNN top-1 (k = 200, cosine, t = 0.1, on the encoder's
features h) on the 10,000 CIFAR-10 test images after 60 minutes of wall clock on the 2-core reference machine.
The clock covers everything a user waits for: data loading, pretraining and the final kNN evaluation.

A recipe is a set of RunConfig overrides (RECIPES below). Its epoch count is fixed up front, because the
warm-up + cosine schedule needs the total number of steps: choose --epochs from a measured images/s
(`bench_train.py`) so the whole run fits the budget; the table says whether it did. With --knn-every E the run
also evaluates kNN every E epochs (inside the clock: it costs about 25 s per evaluation at width x0.25),
which gives the learning curve.

Run by hand (an hour of an otherwise idle machine; the run resumes if it is cut off):
    .venv/bin/python benchmarks/bench_quality.py --recipe cpu60 --epochs 28 --knn-every 7
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import simclr_core  # noqa: F401  (first: it requests huge pages before torch allocates, see simclr_core/hugepages.py)
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.loaders import default_data_dir  # noqa: E402
from benchmarks.machine import describe, load_average  # noqa: E402
from simclr_core.config import RunConfig  # noqa: E402
from simclr_core.train import METRICS_NAME, train  # noqa: E402

# Each recipe: overrides on RunConfig() (after those of its "base" recipe, if any) plus why each value was chosen. The reasons are the expectations that
# picked the values; what was measured is in benchmarks/RESULTS.md ("Quality moonshot").
RECIPES: dict[str, dict] = {
    "cpu60": {
        "overrides": {
            "encoder.name": "resnet18", "encoder.width": 0.25, "encoder.stem": "cifar",
            "batch_size": 256, "augment.ops": ("crop", "color"), "augment.color_strength": 0.5,
            "augment.crop_scale": (0.2, 1.0),
            "loss.kind": "nt_xent", "loss.temperature": 0.2,
            "optim.name": "lars", "optim.lr_scaling": "linear", "optim.base_lr": 1.0,
            "optim.weight_decay": 1e-6, "optim.warmup_epochs": 2.0,
            "precision": "auto", "channels_last": True, "eval.protocols": ("knn",),
            "checkpoint_every_steps": 500, "log_every_steps": 50,
        },
        "why": {
            "encoder.width 0.25": "about 4x the images/s of x0.5 on this CPU: ~30 epochs in an hour instead of ~10",
            "crop_scale (0.2, 1)": "expected: milder crops than (0.08, 1) learn faster in a short schedule on 32 px images",
            "temperature 0.2": "expected: sharper than B.9's 0.5, which is tuned for 100+ epochs, so kNN rises faster",
            "batch 256, LARS lr 1.0": "more steps per epoch than batch 1024 at the same images/s",
            "warm-up 2 epochs": "B.9's 10 would be a third of the run",
        },
    },
    # Run 1 (cpu60) plateaued at 60% over its last 13 epochs: this changes only the optimiser, to the
    # plain SGD with strong weight decay that short CIFAR recipes elsewhere use.
    "cpu60-sgd": {
        "overrides": {"optim.name": "sgd", "optim.base_lr": 0.25, "optim.weight_decay": 5e-4},
        "base": "cpu60",
        "why": {
            "SGD, lr 0.25, weight decay 5e-4": "measured: +5.6 points kNN over cpu60 at 25 epochs (65.68% vs 60.09%)",
        },
    },
    # Session 3's 4.5-epoch proxies (benchmarks/RESULTS.md) moved only the learning rate: 0.5 gained 0.8 points
    # over 0.25, while t = 0.5 lost 6.1, t = 0.1 (with lr 0.5) lost 2.6, and neither 24 / 20 px views nor a
    # 512-wide head or batch 128 gained anything at equal time.
    "cpu60-sgd-lr0.5": {
        "overrides": {"optim.base_lr": 0.5},
        "base": "cpu60-sgd",
        "why": {
            "SGD lr 0.5": "measured: +0.8 points kNN over lr 0.25 in a 4.5-epoch proxy (55.67% vs 54.84%)",
        },
    },
    # Session 4's proxies went on up the learning rate: 1.0 gained another 1.8 points, 2.0 lost 2.1 of them.
    # The full run did not keep the gain (66.98% after 33 epochs vs lr 0.5's 67.15% after 30): lr 0.5 stays the
    # best recipe; this one is kept so the measurement can be repeated.
    "cpu60-sgd-lr1": {
        "overrides": {"optim.base_lr": 1.0},
        "base": "cpu60-sgd-lr0.5",
        "why": {
            "SGD lr 1.0": "measured: 57.51% kNN in the 4.5-epoch proxy vs 55.67% at lr 0.5 and 55.46% at lr 2.0; "
                          "66.98% after 33 epochs (54.7 min) vs 67.15% for lr 0.5 after 30",
        },
    },
    # Session 9: the decoupled loss, which its authors found most useful at small batches like this one.
    "cpu60-dcl": {
        "overrides": {"loss.kind": "dcl"},
        "base": "cpu60-sgd-lr0.5",
        "why": {
            "decoupled NT-Xent (loss.kind=dcl)": "expected: without the positive in the denominator, the views whose "
                                                 "positive is already easy still get full-size gradients; "
                                                 "measured level in the 4.5-epoch proxy (55.45% vs 55.67%) and "
                                                 "67.40% after 33 epochs (53.5 min) vs 67.49% and 67.88% for "
                                                 "NT-Xent (runs 5 and 6)",
        },
    },
    # Session 10: SwAV's multi-crop, two small 16 px views per image next to the two 32 px ones.
    "cpu60-multicrop": {
        "overrides": {"augment.local_crops": 2, "augment.local_crop_size": 16, "augment.local_crop_scale": (0.1, 0.4)},
        "base": "cpu60-sgd-lr0.5",
        "why": {
            "2 small views of 16 px, crop scale (0.1, 0.4)": "expected: more positive pairs per image at a quarter of a "
                                                           "full view's cost each; measured +1.7 points in a proxy at "
                                                           "about equal wall clock (57.35% after 3.5 epochs vs 55.67% "
                                                           "after 4.5), and ~1.36x the time per epoch; "
                                                           "71.06% after 27 epochs (53.3 min) vs 67.88% for the "
                                                           "best two-view run (33 epochs, 56.3 min)",
        },
    },
}


def recipe_overrides(name: str) -> dict:
    """The overrides of recipe `name` on top of those of its base recipes, the nearest last."""
    recipe = RECIPES[name]
    return {**(recipe_overrides(recipe["base"]) if "base" in recipe else {}), **recipe["overrides"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="cpu60", choices=sorted(RECIPES))
    parser.add_argument("--epochs", type=float, default=28.0)
    parser.add_argument("--knn-every", type=int, default=0, help="also evaluate kNN every this many epochs")
    parser.add_argument("--budget-min", type=float, default=60.0)
    parser.add_argument("--data-dir", default=default_data_dir())
    parser.add_argument("--run-dir", default=None, help="default runs/quality/RECIPE-eEPOCHS")
    parser.add_argument("overrides", nargs="*", help="extra RunConfig overrides key=value")
    args = parser.parse_args(argv)
    if not args.data_dir:
        parser.error("needs the full CIFAR-10: pass --data-dir or set SIMCLR_DATA_DIR")

    recipe = RECIPES[args.recipe]
    extra = dict(item.split("=", 1) for item in args.overrides)
    cfg = RunConfig().with_overrides({
        **recipe_overrides(args.recipe), "data.dataset": "cifar10", "data.data_dir": args.data_dir,
        "epochs": args.epochs, "eval.knn_every_epochs": args.knn_every, **extra,
    }).validate()
    run_dir = Path(args.run_dir or f"runs/quality/{args.recipe}-e{args.epochs:g}")
    print("\n".join(describe(torch.device("cpu"))))
    print(f"recipe {args.recipe}: " + json.dumps(cfg.flat(), default=str))
    load_before = load_average()
    start = time.perf_counter()
    metrics = train(cfg, run_dir)
    wall = time.perf_counter() - start

    curve = [json.loads(line) for line in (run_dir / METRICS_NAME).read_text().splitlines()]
    curve = [row for row in curve if "knn_top1" in row]
    print(f"\nload average before: {load_before}; after: {load_average()}")
    print("\n| epoch | kNN top-1 |\n|---|---|")
    for row in curve:
        print(f"| {row['epoch']:.1f} | {row['knn_top1']:.2f}% |")
    print(f"| {metrics['epochs_done']:.1f} (final) | {metrics['knn_top1']:.2f}% |")
    print(f"\nwall clock {wall / 60:.1f} min (pretraining {metrics['pretrain_seconds_this_session'] / 60:.1f} min, "
          f"{metrics['images_per_s']:.0f} images/s), budget {args.budget_min:g} min: "
          f"{'within' if wall <= 60 * args.budget_min else 'OVER'}; "
          f"kNN top-1 {metrics['knn_top1']:.2f}% (target 70%)")
    for choice, reason in recipe["why"].items():
        print(f"  {choice}: {reason}")


if __name__ == "__main__":
    main()
