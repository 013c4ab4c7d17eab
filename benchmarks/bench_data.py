"""Paper-scale data path: images/s of the streamed path against the step it feeds and a PIL DataLoader.

On synthetic ImageNet-like JPEGs that it makes (about 375 x 500 px and 100 kB each, in an image folder and
in parquet shards of the Hugging Face layout), one run prints images/s of:
  (a) pre-made     the training step alone, on two fixed views per image (no data, no augmentation);
  (b) stream       simclr_core's streamed path feeding that step: read the encoded bytes (parquet), decode
                   them ahead of the step (nvjpeg on CUDA, CPU threads otherwise), crop each view from the
                   original image, the paper's augmentation batched, the step (data/stream.py, originals.py);
  (c) pil-loader   torchvision ImageFolder + PIL: decode, RandomResizedCrop, flip, ColorJitter, grayscale,
                   blur per image in DataLoader workers (--workers, the same CPU cores), then the same step.
and the same two data paths without the step ("... data only"), which show the data path's own ceiling.
Issue 16's targets: on a GPU (b) >= 90% of (a) and >= 3x (c); on the 2-core reference CPU (b) >= 1.5x (c).

    .venv/bin/python benchmarks/bench_data.py                    # CPU defaults: ResNet-18 x0.25, 96 px
    .venv/bin/python benchmarks/bench_data.py --device cuda --encoder resnet50 --width 1 --size 224 \\
        --batch 256 --images 4096 --workers 14
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import simclr_core  # noqa: F401  (first: huge pages before torch allocates)
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402
import timing  # noqa: E402
from steps import Step  # noqa: E402

from simclr_core.augment import build_augmentation  # noqa: E402
from simclr_core.compiling import COMPILE_MODES  # noqa: E402
from simclr_core.config import DataConfig, RunConfig  # noqa: E402
from simclr_core.data.catalog import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from simclr_core.data.encoded import open_encoded  # noqa: E402
from simclr_core.data.stream import StreamedBatches  # noqa: E402
from simclr_core.seeding import step_seed  # noqa: E402

CLASSES = 10


def photo(seed: int, i: int) -> bytes:
    """One JPEG of ~375 x 500 px (or 500 x 375), ~100 kB: coarse colour blobs with fine noise."""
    from PIL import Image

    rng = np.random.default_rng([seed, i])
    h, w = (375, 500) if i % 3 else (500, 375)
    coarse = rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8)
    fine = rng.integers(-24, 25, (h, w, 3))
    pixels = np.clip(np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), dtype=np.int64) + fine,
                     0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def make_photos(root: Path, count: int, seed: int = 0) -> tuple[Path, Path]:
    """`count` JPEGs: an image folder and the same bytes as parquet shards (made on every core)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder, shards = root / "folder", root / "parquet"
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        photos = list(pool.map(photo, [seed] * count, range(count), chunksize=64))
    rows = []
    for i, data in enumerate(photos):
        label = i % CLASSES
        path = folder / "train" / f"class{label}" / f"{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        rows.append((data, label))
    shards.mkdir(parents=True, exist_ok=True)
    per = 1024
    for s in range(0, count, per):
        part = rows[s:s + per]
        table = pa.table({"image": [{"bytes": b, "path": None} for b, _ in part],
                          "label": pa.array([l for _, l in part], pa.int64())})
        pq.write_table(table, shards / f"train-{s // per:05d}-of-{-(-count // per):05d}.parquet", row_group_size=256)
    print(f"made {count} JPEGs, {sum(len(b) for b, _ in rows) / count / 1e3:.0f} kB each on average, in {root}")
    return folder, shards


def pil_loader(folder: Path, size: int, batch: int, workers: int, batches: int, strength: float = 1.0):
    """torchvision ImageFolder + PIL transforms (the paper's augmentation, as peers run it), two views; each
    iterator yields `batches` batches of images drawn at random (so a measurement is never cut by an epoch's
    end). Its workers persist, and start an iterator's batches only when it is made: a measurement that takes all
    of them leaves none made ahead for the next."""
    from torch.utils.data import DataLoader, RandomSampler
    from torchvision import datasets, transforms as T

    s = strength
    one_view = T.Compose([
        T.RandomResizedCrop(size), T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=0.8), T.RandomGrayscale(p=0.2),
        T.RandomApply([T.GaussianBlur(kernel_size=2 * (size // 20) + 1, sigma=(0.1, 2.0))], p=0.5),
        T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    dataset = datasets.ImageFolder(str(folder / "train"), transform=lambda im: (one_view(im), one_view(im)))
    sampler = RandomSampler(dataset, replacement=True, num_samples=batches * batch)
    return DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=workers, drop_last=True,
                      persistent_workers=workers > 0, pin_memory=torch.cuda.is_available(),
                      prefetch_factor=2 if workers > 0 else None)


def pil_steps(steps: int, workers: int) -> int:
    """Batches (c) is timed over: at least `steps`, and whole rounds of its workers, each of which makes a whole
    batch; fewer would time one worker's batch, not the loader's rate (14 workers, 6 batches: under half)."""
    rounds = max(1, -(-steps // max(1, workers)))
    return rounds * max(1, workers)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--encoder", default=None, help="default: resnet50 on CUDA, resnet18 on CPU")
    p.add_argument("--width", type=float, default=None, help="default: 1 on CUDA, 0.25 on CPU")
    p.add_argument("--size", type=int, default=None, help="view side (default: 224 on CUDA, 96 on CPU)")
    p.add_argument("--batch", type=int, default=None, help="images per step (default: 256 on CUDA, 64 on CPU)")
    p.add_argument("--images", type=int, default=None, help="JPEGs made (default: 4096 on CUDA, 512 on CPU)")
    p.add_argument("--steps", type=int, default=None, help="steps per measurement (default: 8)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="DataLoader workers of (c)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dir", default=None, help="where the JPEGs go (default: a temporary folder)")
    p.add_argument("--compile", default="auto", choices=COMPILE_MODES,
                   help="torch.compile of the step's model, as train()'s `compile` (benchmarks/bench_step.py "
                        "compares the modes)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    encoder = args.encoder or ("resnet50" if gpu else "resnet18")
    width = args.width or (1.0 if gpu else 0.25)
    size, batch = args.size or (224 if gpu else 96), args.batch or (256 if gpu else 64)
    count, steps = args.images or (4096 if gpu else 512), args.steps or 8
    print("\n".join(machine.describe(device)))
    print(f"{encoder} x{width:g}, {size} px views, batch {batch}, {steps} steps per measurement, "
          f"(c) with {args.workers} workers over {pil_steps(steps, args.workers)} steps")

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder, shards = make_photos(Path(tmp), count)
        cfg = RunConfig().with_overrides({"encoder.name": encoder, "encoder.width": width, "batch_size": batch,
                                          "augment.ops": ("crop", "color", "blur"), "augment.color_strength": 1.0,
                                          "compile": args.compile})
        step = Step(cfg, device, num_images=count, image_size=size)
        augment = build_augmentation(cfg.augment, size, IMAGENET_MEAN, IMAGENET_STD)
        views = torch.empty((2 * batch, 3, size, size), device=device).to(memory_format=torch.channels_last)
        premade = torch.randn_like(views)
        split = open_encoded(DataConfig(dataset="parquet", data_dir=str(shards)), "train")
        steps_per_epoch = count // batch
        state = {"stream_step": 0}
        c_steps = pil_steps(steps, args.workers)
        loader = pil_loader(folder, size, batch, args.workers, c_steps)

        def run_premade() -> float:
            start = timing.clock(device)
            for _ in range(steps):
                step(premade)
            return timing.clock(device) - start

        def run_stream(with_step: bool) -> float:
            first = state["stream_step"]
            state["stream_step"] += steps
            start = timing.clock(device)
            with StreamedBatches(split, seed=0, local_batch=batch, rank=0, world=1, steps_per_epoch=steps_per_epoch,
                                 start_step=first, stop_step=first + steps, device=device) as stream:
                for index, images in stream:
                    generator = torch.Generator().manual_seed(step_seed(0, index, 0))
                    augment.views_from_originals(images, generator, out=views)
                    if with_step:
                        step(views)
            return timing.clock(device) - start

        def run_pil(with_step: bool) -> float:
            # A fresh iterator per measurement, its first batch inside the clock: batches made while other variants
            # ran would otherwise come free (as bench_train.py explains).
            start = timing.clock(device)
            for (v1, v2), _ in loader:
                x = torch.cat((v1.to(device, non_blocking=True), v2.to(device, non_blocking=True)))
                x = x.contiguous(memory_format=torch.channels_last)
                if with_step:
                    step(x)
            return timing.clock(device) - start

        variants = {"(a) pre-made": run_premade, "(b) stream": lambda: run_stream(True),
                    "(c) pil-loader": lambda: run_pil(True), "(b) stream, data only": lambda: run_stream(False),
                    "(c) pil-loader, data only": lambda: run_pil(False)}
        seconds = timing.run_interleaved(variants, args.repeats)
        rows = [timing.Row(name, s, (c_steps if name.startswith("(c)") else steps) * batch)
                for name, s in seconds.items()]
        print(timing.table(rows, "images/s", reference="(c) pil-loader", label="(c)"))
        a, b, c = (next(r for r in rows if r.name == n) for n in ("(a) pre-made", "(b) stream", "(c) pil-loader"))
        print(f"(b) / (a) = {timing.paired_ratio(b, a):.2f}  (target on a GPU >= 0.90);  (b) / (c) = "
              f"{timing.paired_ratio(b, c):.2f}  (target >= 3 on a GPU, >= 1.5 on the 2-core CPU)")


if __name__ == "__main__":
    main()
