"""Two augmented views of CIFAR-10 batches: simclr_core's batched module vs lightly vs textbook torchvision.

Issue 5 targets, each a ratio of medians measured side by side in one run:
  32 px, crop + resize + flip, colour distortion s = 0.5 (jitter p = 0.8, grayscale p = 0.2):
      simclr_core >= 4x lightly's SimCLRTransform in its best DataLoader setting;
  224 px, the same plus Gaussian blur (p = 0.5, sigma in [0.1, 2], kernel 10% of the side), s = 1.0:
      simclr_core >= 3x lightly.

Contenders, all producing two normalised float32 (B, 3, S, S) views of B random images:
  simclr_core    build_augmentation(...) on the uint8 batch, in the main process, writing both views into
                 one channels_last tensor reused for every batch (as train() runs it), with torch's default
                 thread count and with one thread;
  lightly        lightly.transforms.SimCLRTransform on PIL images (its documented input; on uint8 tensors it is
                 ~10x slower since its blur round-trips through PIL), DataLoader with 0, 1 or 2 workers;
  torchvision    a textbook per-image torchvision.transforms.v2 pipeline on uint8 tensors, same DataLoaders.
Images: real CIFAR-10 decoded once (the shared parquet files, else the embedded subset). At 224 px they are
CIFAR-10 images upsampled to 224 x 224 at decode time (bilinear, antialiased): no larger images are on disk.

Run by hand (lightly is the optional `bench` extra):
    .venv/bin/python benchmarks/bench_augment.py [--sizes 32 224] [--repeats 5] [--device cuda]
"""
from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import simclr_core  # noqa: F401  (first: it requests huge pages before torch allocates, see simclr_core/hugepages.py)
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402
import memory  # noqa: E402
import timing  # noqa: E402
from loaders import MultiView, RandomSubset, TwoViews, default_data_dir, load_pool, pil_images  # noqa: E402

from simclr_core.augment import build_augmentation  # noqa: E402
from simclr_core.config import AugmentConfig  # noqa: E402
from simclr_core.data import ImageSet  # noqa: E402

OURS = "simclr_core (batched, main process"
LIGHTLY = "lightly SimCLRTransform"
TEXTBOOK = "torchvision v2 per image"
TARGETS = {32: 4.0, 224: 3.0}
# Paper, Appendix B.9: s = 0.5 for CIFAR-10; Appendix A: s = 1.0 and blur for ImageNet-sized images.
SETTINGS = {32: dict(strength=0.5, blur=False), 224: dict(strength=1.0, blur=True)}


def lightly_transform(size: int, pool: ImageSet):
    from lightly.transforms import SimCLRTransform

    s = SETTINGS[size]
    return SimCLRTransform(input_size=size, cj_strength=s["strength"], min_scale=0.08, random_gray_scale=0.2,
                           gaussian_blur=0.5 if s["blur"] else 0.0, sigmas=(0.1, 2.0), hf_prob=0.5,
                           normalize={"mean": list(pool.mean), "std": list(pool.std)})


@functools.cache
def lightly_installed() -> bool:
    """Whether lightly can be imported; where it cannot, one line (once) says its rows and the ratio to it are left out."""
    try:
        import lightly.transforms  # noqa: F401
    except ImportError as error:
        print(f"lightly is not installed ({error}; it is the optional `bench` extra: pip install -e '.[bench]'): its "
              "rows and the targets' ratios to it are left out")
        return False
    return True


def textbook_view(size: int, pool: ImageSet):
    """The paper's Appendix A pseudo-code written with torchvision.transforms.v2, one image at a time."""
    from torchvision.transforms import v2

    s = SETTINGS[size]["strength"]
    ops = [v2.RandomResizedCrop(size, scale=(0.08, 1.0)), v2.RandomHorizontalFlip(p=0.5),
           v2.RandomApply([v2.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=0.8),
           v2.RandomGrayscale(p=0.2)]
    if SETTINGS[size]["blur"]:
        ops.append(v2.RandomApply([v2.GaussianBlur(kernel_size=(size // 10) | 1, sigma=(0.1, 2.0))], p=0.5))
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(pool.mean), list(pool.std))]
    return v2.Compose(ops)


def ours_names(device: torch.device) -> dict[str, int]:
    """simclr_core's rows: torch's default thread count and, on a multi-core CPU, one thread (which a CPU
    shared with other multi-threaded jobs can favour: OpenMP barriers stall when a thread is descheduled)."""
    default = torch.get_num_threads()
    counts = [default] if device.type == "cuda" or default == 1 else [default, 1]
    return {f"{OURS}, {t} thread{'s' if t > 1 else ''})": t for t in counts}


def build_variants(args, size: int, pool: ImageSet, device: torch.device, shapes: dict,
                   only: str | None = None) -> dict:
    """{name: measure()}; each measure() makes ``batches`` two-view batches and returns its seconds."""
    count = args.batch * args.batches[size]
    variants = {}

    def record(name, v1, v2):
        shapes[name] = (tuple(v1.shape), tuple(v2.shape), v1.dtype, v1.device.type)

    if any(only in (None, n) for n in ours_names(device)):
        s = SETTINGS[size]
        cfg = AugmentConfig(ops=("crop", "color", "blur") if s["blur"] else ("crop", "color"),
                            color_strength=s["strength"])
        augment = build_augmentation(cfg, size, pool.mean, pool.std)
        images = pool.images.to(device)   # resident on the device, as train() keeps datasets < 2 GiB
        generator = torch.Generator().manual_seed(args.seed)
        # As train() runs it: both views of every batch written into one tensor made once, in the
        # model's memory format (see simclr_core.train).
        out = torch.empty((2 * args.batch, 3, size, size), device=device, memory_format=torch.channels_last)

        def make_ours(name, threads):
            def ours():
                previous = torch.get_num_threads()
                torch.set_num_threads(threads)
                try:
                    start = timing.clock(device)
                    perm = torch.randperm(len(images), generator=generator)[:count].to(device)
                    for b in range(args.batches[size]):
                        view1, view2 = augment(images[perm[b * args.batch:(b + 1) * args.batch]], generator,
                                               out=out)
                    elapsed = timing.clock(device) - start
                finally:
                    torch.set_num_threads(previous)
                record(name, view1, view2)
                return elapsed
            return ours
        for name, threads in ours_names(device).items():
            if only in (None, name):
                variants[name] = make_ours(name, threads)

    def loader_variant(name, dataset, workers):
        loader = DataLoader(dataset, batch_size=args.batch, sampler=RandomSubset(len(dataset), count, args.seed),
                            num_workers=workers, persistent_workers=workers > 0 and only is None,
                            pin_memory=device.type == "cuda", drop_last=True)

        def measure():
            start = timing.clock(device)
            for view1, view2 in loader:
                view1 = view1.to(device, non_blocking=True)
                view2 = view2.to(device, non_blocking=True)
            elapsed = timing.clock(device) - start
            record(name, view1, view2)
            return elapsed
        return measure

    lightly_names = {f"{LIGHTLY}, {w} workers": w for w in args.workers}
    textbook_workers = args.textbook_workers or (args.workers if size == 32 else [max(args.workers)])
    textbook_names = {f"{TEXTBOOK}, {w} workers": w for w in textbook_workers}
    if any(only in (None, n) for n in lightly_names) and not lightly_installed():
        lightly_names = {}
    if any(only in (None, n) for n in lightly_names):
        dataset = MultiView(pil_images(pool.images), lightly_transform(size, pool))
        for name, w in lightly_names.items():
            if only in (None, name):
                variants[name] = loader_variant(name, dataset, w)
    if any(only in (None, n) for n in textbook_names):
        dataset = TwoViews(list(pool.images), textbook_view(size, pool))
        for name, w in textbook_names.items():
            if only in (None, name):
                variants[name] = loader_variant(name, dataset, w)
    return variants


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 224], choices=[32, 224])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--batches-32", type=int, default=4, help="batches per measurement at 32 px")
    # At least 2 batches per worker: a DataLoader worker makes whole batches, so with 1 batch per measurement
    # lightly's 2-worker row runs on one core (measured: 104 vs 157 images/s at 224 px with 1 vs 4 batches).
    p.add_argument("--batches-224", type=int, default=4, help="batches per measurement at 224 px")
    p.add_argument("--pool-224", type=int, default=1024, help="upsampled images held at 224 px")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--textbook-workers", type=int, nargs="+",
                   help="worker counts for the torchvision pipeline (default: --workers at 32 px, the largest at "
                        "224 px, where it is the slowest contender by far)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--no-memory", action="store_true", help="skip the per-variant fresh-process memory runs")
    p.add_argument("--memory-of", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.batches = {32: args.batches_32, 224: args.batches_224}
    return args


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.memory_of:   # child process: one variant, one measurement, under PeakMemory
        size = args.sizes[0]
        pool = load_pool(args.data_dir, size, None if size == 32 else args.pool_224)
        measure = build_variants(args, size, pool, device, {}, only=args.memory_of)[args.memory_of]
        with memory.PeakMemory(device) as peak:
            measure()
        memory.report(peak)
        return

    print("\n".join(machine.describe(device)))
    print(f"load before: {machine.load_average()}")
    summaries = []
    for size in args.sizes:
        pool = load_pool(args.data_dir, size, None if size == 32 else args.pool_224)
        print(f"\n## {size} px: {len(pool)} CIFAR-10 training images ({pool.name}"
              f"{', upsampled to 224 px at decode' if size != 32 else ''}), batch {args.batch}, "
              f"{args.batches[size]} batches per measurement, {args.repeats} interleaved repeats")
        shapes: dict = {}
        variants = build_variants(args, size, pool, device, shapes)
        seconds = timing.run_interleaved(variants, args.repeats)
        for name, (s1, s2, dtype, dev) in shapes.items():
            if s1 != (args.batch, 3, size, size) or s2 != s1 or dtype != torch.float32:
                raise AssertionError(f"{name} produced views {s1}, {s2} {dtype}, "
                                     f"expected {(args.batch, 3, size, size)}")
        rows = [timing.Row(name, secs, args.batch * args.batches[size]) for name, secs in seconds.items()]
        if not args.no_memory:
            child_argv = memory.replace_option(argv, "--sizes", [str(size)])
            for row in rows:
                result = memory.in_fresh_process(__file__, child_argv, row.name)
                row.memory_mib = memory.headline_mib(result, device)
        ref = timing.best(rows, LIGHTLY) if any(row.name.startswith(LIGHTLY) for row in rows) else None
        print(f"\nimages/s (each image -> 2 views); peak mem: extra host memory of one measurement in a fresh "
              f"process (main peak RSS + workers' USS){'; CUDA: device memory' if device.type == 'cuda' else ''}")
        print(timing.table(rows, "images/s", reference=ref and ref.name, label="best lightly"))
        if ref is None:
            continue
        ours = timing.best(rows, OURS)
        ratio = ours.median_rate / ref.median_rate
        paired = timing.paired_ratio(ours, ref)
        worst = min(ours.rates) / max(ref.rates)
        low = min(ratio, paired)
        verdict = "meets" if low >= TARGETS[size] else f"misses (by {TARGETS[size] / low:.2f}x)"
        summaries.append(f"{size} px: best simclr_core ({ours.name}) / best lightly ({ref.name}) = "
                         f"{ratio:.2f}x (ratio of medians), {paired:.2f}x (median of per-repeat ratios), "
                         f"{worst:.2f}x (ours slowest vs lightly fastest); target >= {TARGETS[size]:g}x: {verdict}")
    print("\n" + "\n".join(summaries))
    print(f"load after: {machine.load_average()}")


if __name__ == "__main__":
    main()
