"""The CPU block cache (simclr_core/cpu_cache.py) against torch's CPU allocator: time, page faults, memory.

Two workloads, each measured with the cache installed and with torch's allocator, alternating repeat by
repeat in one process (the cache keeps its idle blocks while torch's allocator runs, as it would in a
training process; its first fill, one step's worth of fresh huge pages, falls in the untimed warm-up):
  step     --steps pretraining steps on pre-made views (bf16 autocast where native, channels_last, NT-Xent,
           backward, LARS) of ResNet-18 (CIFAR stem) at each --widths, batch --batch (2x as many views);
  augment  --batches batches of the 224 px augmentation (crop, colour s = 1, blur) of --batch-224 random
           images of 256 px into one reused output, as train() runs it; with --no-augment, skipped.
Per workload and allocator: images/s (median, min, max of --repeats), page faults and system CPU seconds
per step or batch (medians); then the process's resident memory and the cache's idle part of it.

Run by hand:
    .venv/bin/python benchmarks/bench_cpu_cache.py [--widths 0.25 1] [--repeats 10]
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
from pathlib import Path
from typing import Callable

import simclr_core  # noqa: F401  (first: it requests huge pages before torch allocates, see simclr_core/hugepages.py)
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402
import timing  # noqa: E402
from steps import Step  # noqa: E402

from simclr_core import cpu_cache  # noqa: E402
from simclr_core.augment import build_augmentation  # noqa: E402
from simclr_core.config import AugmentConfig, EncoderConfig, EvalConfig, RunConfig  # noqa: E402

CACHE, TORCH = "block cache", "torch's allocator"


def resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


class Counted:
    """Wraps one measurement: switches the allocator, then records page faults and system time per unit."""

    def __init__(self, work: Callable[[], float], use_cache: bool, units: int):
        self.work, self.use_cache, self.units = work, use_cache, units
        self.faults: list[float] = []
        self.system: list[float] = []
        self.resident = self.idle = 0.0

    def __call__(self) -> float:
        if self.use_cache:
            cpu_cache.install()
        else:
            cpu_cache.uninstall()
        before = resource.getrusage(resource.RUSAGE_SELF)
        seconds = self.work()
        after = resource.getrusage(resource.RUSAGE_SELF)
        self.faults.append((after.ru_minflt - before.ru_minflt) / self.units)
        self.system.append((after.ru_stime - before.ru_stime) / self.units)
        self.resident = resident_mib()
        self.idle = cpu_cache.stats()["idle_bytes"] / 2**20
        return seconds


def step_work(width: float, views: int, steps: int) -> Callable[[], float]:
    cfg = RunConfig(encoder=EncoderConfig(width=width), eval=EvalConfig(protocols=()), batch_size=views // 2)
    step = Step(cfg, torch.device("cpu"))
    x = torch.randn(views, 3, 32, 32).contiguous(memory_format=torch.channels_last)

    def run() -> float:
        start = timing.clock(x.device)
        for _ in range(steps):
            step(x)
        return timing.clock(x.device) - start
    return run


def augment_work(batch: int, batches: int) -> Callable[[], float]:
    cfg = AugmentConfig(ops=("crop", "color", "blur"), color_strength=1.0)
    augment = build_augmentation(cfg, 224, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    images = torch.randint(0, 256, (batch, 3, 256, 256), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = torch.empty((2 * batch, 3, 224, 224), memory_format=torch.channels_last)
    generator = torch.Generator().manual_seed(1)

    def run() -> float:
        start = timing.clock(images.device)
        for _ in range(batches):
            augment(images, generator, out=out)
        return timing.clock(images.device) - start
    return run


def report(title: str, variants: dict[str, Counted], seconds: dict[str, list[float]], images: int, unit: str):
    rows = [timing.Row(name, seconds[name], images) for name in variants]
    print(f"\n## {title}\n")
    print(timing.table(rows, "images/s", reference=TORCH, label="torch"))
    for name, counted in variants.items():
        print(f"{name}: {statistics.median(counted.faults):,.0f} page faults and "
              f"{1000 * statistics.median(counted.system):.0f} ms system CPU per {unit} (medians)")
    print(f"after the last repeat: the process's resident memory {variants[CACHE].resident:,.0f} MiB, of which "
          f"{variants[CACHE].idle:,.0f} MiB idle in the cache")
    paired = statistics.median(t / c for t, c in zip(seconds[TORCH], seconds[CACHE]))
    print(f"cache / torch speed: {paired:.2f}x (median of per-repeat ratios)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--widths", type=float, nargs="+", default=[0.25])
    p.add_argument("--batch", type=int, default=256, help="images per training step (2x as many views)")
    p.add_argument("--steps", type=int, default=3, help="training steps per measurement")
    p.add_argument("--batch-224", type=int, default=64, help="images per 224 px augmentation batch")
    p.add_argument("--batches", type=int, default=2, help="224 px batches per measurement")
    p.add_argument("--no-augment", action="store_true", help="skip the 224 px augmentation")
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args(argv)
    if not cpu_cache.install():
        sys.exit(f"the block cache is not available here (Linux, g++ and ninja, {cpu_cache.SWITCH} unset or 1)")
    print("\n".join(machine.describe(torch.device("cpu"))))
    print(f"load before: {machine.load_average()}")
    for width in args.widths:
        work = step_work(width, 2 * args.batch, args.steps)
        variants = {CACHE: Counted(work, True, args.steps), TORCH: Counted(work, False, args.steps)}
        seconds = timing.run_interleaved(variants, args.repeats, log=lambda _: None)
        report(f"ResNet-18 x{width:g} training step on pre-made views, batch {args.batch}, {args.steps} steps per "
               f"repeat", variants, seconds, args.batch * args.steps, "step")
    if not args.no_augment:
        work = augment_work(args.batch_224, args.batches)
        variants = {CACHE: Counted(work, True, args.batches), TORCH: Counted(work, False, args.batches)}
        seconds = timing.run_interleaved(variants, args.repeats, log=lambda _: None)
        report(f"224 px augmentation (crop, colour s = 1, blur), batch {args.batch_224}, {args.batches} batches per "
               f"repeat", variants, seconds, args.batch_224 * args.batches, "batch")
    print(f"\nload after: {machine.load_average()}")


if __name__ == "__main__":
    main()
