"""Write the CIFAR-10 subset shipped in the repo: simclr_core/assets/cifar10_subset/{train,test}.parquet.

A class-balanced, seeded choice (500 images per class from train, 100 per class from test), shuffled so the
files are not sorted by class. The original JPEG bytes and paths are kept as they are (no re-encoding); the
files carry the `datasets` features Image + ClassLabel (names read from the source paths, e.g. "cat/0042.jpg"),
so `datasets.load_dataset("parquet", ...)` on them gives the Hub schema.

    python scripts/make_embedded_subset.py [--source DIR] [--seed 0]

DIR defaults to $SIMCLR_DATA_DIR/cifar10 when that is set, else ../shared/data/cifar10 beside the repository.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from simclr_core.data.subset import balanced_subset

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = (Path(os.environ["SIMCLR_DATA_DIR"]) if os.environ.get("SIMCLR_DATA_DIR")
                  else REPO.parent / "shared" / "data") / "cifar10"
PER_CLASS = {"train": 500, "test": 100}


def class_names(paths: list[str], labels: np.ndarray) -> list[str]:
    """Label id -> the folder name its source paths share ("airplane/0000.jpg" -> "airplane")."""
    names = {}
    for path, label in zip(paths, labels.tolist()):
        name = path.split("/")[0]
        if names.setdefault(label, name) != name:
            raise ValueError(f"label {label} is both {names[label]!r} and {name!r}")
    return [names[i] for i in range(len(names))]


def write_split(source: Path, out: Path, split: str, per_class: int, seed: int) -> tuple[list[str], int]:
    import datasets

    table = pq.read_table(source / f"{split}.parquet")
    labels = table.column("label").to_numpy()
    images = table.column("img").combine_chunks()
    names = class_names(images.field("path").to_pylist(), labels)
    chosen = balanced_subset(labels, per_class * len(names), seed=seed)
    chosen = np.random.default_rng(seed).permutation(chosen)  # not sorted by class
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    subset = datasets.Dataset.from_dict(
        {"img": images.take(chosen).to_pylist(), "label": labels[chosen].tolist()}, features=features)
    out.mkdir(parents=True, exist_ok=True)
    subset.to_parquet(out / f"{split}.parquet")
    return names, len(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                        help="folder with the full CIFAR-10 train.parquet and test.parquet (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=REPO / "simclr_core" / "assets" / "cifar10_subset")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    missing = [split for split in PER_CLASS if not (args.source / f"{split}.parquet").is_file()]
    if missing:
        parser.error(f"--source {args.source} has no {', '.join(f'{s}.parquet' for s in missing)}; "
                     "pass the folder of the full CIFAR-10 parquet files")
    total = 0
    for split, per_class in PER_CLASS.items():
        names, count = write_split(args.source, args.out, split, per_class, args.seed)
        size = (args.out / f"{split}.parquet").stat().st_size
        total += size
        print(f"{split}: {count} images ({per_class} x {len(names)} classes), {size / 1e6:.2f} MB")
    print(f"total {total / 1e6:.2f} MB in {args.out}")


if __name__ == "__main__":
    main()
