"""Fine-tuning (Tables 7, 8, B.2) in fp32 against the run's precision: bf16 autocast and channels_last.

Until session 29 the fine-tuning protocols called finetune_eval without the run's autocast dtype and memory
format, so every fine-tuning ran in fp32 whatever `precision` chose. This times one finetune_eval (one epoch over
the labelled images, then the test split) of a ResNet on the embedded CIFAR-10 subset both ways, interleaved.

Run by hand:
    .venv/bin/python benchmarks/bench_finetune.py [--arch resnet18] [--width 0.25] [--images 2000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import simclr_core  # noqa: F401  (first: it requests huge pages before torch allocates, see simclr_core/hugepages.py)
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402
import timing  # noqa: E402

from simclr_core.augment import build_augmentation  # noqa: E402
from simclr_core.config import AugmentConfig, DataConfig  # noqa: E402
from simclr_core.data.feed import open_feed  # noqa: E402
from simclr_core.evaluate.finetune import finetune_eval  # noqa: E402
from simclr_core.models import create_encoder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--images", type=int, default=2000, help="labelled training images (of the 5,000)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    device = torch.device("cpu")
    feed = open_feed(DataConfig(dataset="cifar10_subset", train_limit=args.images, test_limit=1000),
                     need_test=True, device=device)
    encoder = create_encoder(args.arch, width=args.width, stem="auto", image_size=32)
    crop = build_augmentation(AugmentConfig(ops=("crop",)), 32, feed.mean, feed.std)

    def once(dtype: torch.dtype | None, channels_last: bool):
        def run() -> float:
            start = time.perf_counter()
            finetune_eval(encoder, feed.train_eval, feed.train_labels, feed.test_eval, feed.test_labels,
                          mean=feed.mean, std=feed.std, num_classes=feed.num_classes, label_fraction=1.0, epochs=1,
                          batch_size=args.batch_size, lr=0.05, seed=0, augment=crop.first_view,
                          autocast_dtype=dtype, channels_last=channels_last)
            return time.perf_counter() - start
        return run

    variants = {"fp32 (before)": once(None, False), "bf16 autocast + channels_last": once(torch.bfloat16, True)}
    print("\n".join(machine.describe(device)))
    print(f"{args.arch} x{args.width}, {args.images} labelled images (1 epoch, batch {args.batch_size}) + 1,000 test")
    seconds = timing.run_interleaved(variants, args.repeats)
    work = args.images + 1000
    rows = [timing.Row(name, s, work) for name, s in seconds.items()]
    print(timing.table(rows, "images/s", reference="fp32 (before)", label="fp32"))


if __name__ == "__main__":
    main()
