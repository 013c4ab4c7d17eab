"""Pretraining throughput: simclr_core's full step vs the same step on pre-made views vs a lightly-based loop.

Issue 5 targets, each a ratio of medians measured side by side in one run (ResNet-18 with the CIFAR stem,
batch 256 = 512 views of 32 px CIFAR-10, bf16 autocast where the device has it, channels_last, LARS):
  full pipeline (data + augmentation + step) >= 90% of the same step on pre-made views, at 0.25x and 1x width;
  simclr_core's pipeline >= 1.5x a lightly-based loop on the 0.25x model.

Contenders (each its own model and optimiser, all built from the same RunConfig):
  pipeline     what simclr_core.train does per step, reproduced with its parts: gather the batch from the uint8
               dataset, build_augmentation (crop + colour s = 0.5) writing both views into one reused
               channels_last tensor, the model on it under autocast,
               compute_loss (NT-Xent), warm-up/cosine lr, LARS step;
  pre-made     the same step on two fixed, already augmented views (no data, no augmentation);
  train()      simclr_core.train.train itself with max_steps, timed from its own per-step metrics.jsonl
               rows (log_every_steps=1; set-up, the first --train-warmup steps and the final checkpoint are
               outside them: a fresh model's first steps run slower (measured in RESULTS.md, session 4),
               a cost the other rows, whose models persist across repeats, paid once);
  lightly      lightly SimCLRTransform (same augmentation, PIL images) in a DataLoader with 0, 1 or 2 workers,
               lightly NTXentLoss(temperature=0.5), and the same model, autocast, single forward on the
               concatenated views, and LARS step as the pipeline.
On CPUs the block cache (simclr_core/cpu_cache.py), which train() installs, serves every contender alike.
A measurement of the pipeline or the pre-made step is a single step, so the two alternate step by step
and a shared machine's slow spells hit both alike. train() runs --train-warmup untimed steps, then
--loop-steps timed ones. A lightly measurement is an epoch of --lightly-steps steps timed from the
DataLoader's start, first batch included, as in training: timing only later steps would credit lightly
with batches its workers prepared before the clock started (up to 2 per worker), which for short runs
hides its augmentation cost.

Run by hand (lightly is the optional `bench` extra):
    .venv/bin/python benchmarks/bench_train.py [--widths 0.25 1.0] [--repeats 3] [--device cuda]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import simclr_core  # noqa: F401  (first: it requests huge pages before torch allocates, see simclr_core/hugepages.py)
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402
import memory  # noqa: E402
import timing  # noqa: E402
from loaders import MultiView, RandomSubset, cifar_config, default_data_dir, pil_images  # noqa: E402
from steps import Step  # noqa: E402

from simclr_core import cpu_cache  # noqa: E402
from simclr_core.augment import build_augmentation  # noqa: E402
from simclr_core.config import EncoderConfig, EvalConfig, RunConfig  # noqa: E402
from simclr_core.data import load_images  # noqa: E402
from simclr_core.precision import resolve_precision  # noqa: E402
from simclr_core.train import METRICS_NAME, train  # noqa: E402

PIPELINE = "simclr_core pipeline (data + augment + step)"
PREMADE = "same step on pre-made views"
TRAIN = "simclr_core.train() (its logged rate)"
LIGHTLY = "lightly loop"
PREMADE_TARGET, LIGHTLY_TARGET = 0.90, 1.5


def run_config(args, width: float) -> RunConfig:
    return RunConfig(data=cifar_config(args.data_dir), encoder=EncoderConfig(width=width),
                     eval=EvalConfig(protocols=()), batch_size=args.batch, precision=args.precision,
                     channels_last=True, log_every_steps=1, checkpoint_every_steps=10**9, seed=args.seed)


def timed_steps(args, name: str) -> int:
    if name in (PIPELINE, PREMADE):
        return 1
    return args.lightly_steps if name.startswith(LIGHTLY) else args.loop_steps


def build_variants(args, width: float, device: torch.device, only: str | None = None) -> dict:
    """{name: measure()}; each returns the seconds of its `timed_steps`."""
    cfg = run_config(args, width)
    steps = args.loop_steps
    variants = {}
    need = lambda name: only is None or only == name  # noqa: E731
    if any(need(n) for n in (PIPELINE, PREMADE)):
        train_set = load_images(cfg.data, "train")
        images = train_set.images.to(device)
        augment = build_augmentation(cfg.augment, 32, train_set.mean, train_set.std)
        generator = torch.Generator()

    if need(PIPELINE):
        step = Step(cfg, device, len(images))
        # As train() does: every step's views are written into one reused tensor in the model's layout.
        views = torch.empty((2 * args.batch, 3, 32, 32), device=device, memory_format=torch.channels_last)

        def pipeline():
            start = timing.clock(device)
            batch = images[torch.randperm(len(images), generator=generator)[: args.batch].to(device)]
            generator.manual_seed(args.seed * 1_000_003 + step.index)
            augment(batch, generator, out=views)
            step(views)
            return timing.clock(device) - start
        variants[PIPELINE] = pipeline

    if need(PREMADE):
        premade_step = Step(cfg, device, len(images))
        premade_views = torch.cat(augment(images[: args.batch], generator.manual_seed(args.seed)))
        premade_views = premade_views.contiguous(memory_format=torch.channels_last)

        def premade():
            start = timing.clock(device)
            premade_step(premade_views)
            return timing.clock(device) - start
        variants[PREMADE] = premade

    if need(TRAIN):
        def call_train():
            with tempfile.TemporaryDirectory() as run_dir, open(os.devnull, "w") as quiet:
                with contextlib.redirect_stderr(quiet):   # train()'s progress bar
                    train(replace(cfg, max_steps=args.train_warmup + steps), run_dir)
                rows = [json.loads(line) for line in (Path(run_dir) / METRICS_NAME).read_text().splitlines()]
            timed = [r for r in rows if "images_per_s" in r][args.train_warmup:]
            return sum(args.batch / r["images_per_s"] for r in timed)
        variants[TRAIN] = call_train

    lightly_names = {f"{LIGHTLY}, {w} workers": w for w in args.workers} if width in args.lightly_widths else {}
    if any(need(n) for n in lightly_names):
        from lightly.loss import NTXentLoss
        from lightly.transforms import SimCLRTransform

        train_set = load_images(cfg.data, "train")
        a = cfg.augment
        transform = SimCLRTransform(input_size=32, cj_strength=a.color_strength, min_scale=a.crop_scale[0],
                                    random_gray_scale=0.2, gaussian_blur=0.0, hf_prob=0.5,
                                    normalize={"mean": list(train_set.mean), "std": list(train_set.std)})
        dataset = MultiView(pil_images(train_set.images), transform)
        for name, w in lightly_names.items():
            if need(name):
                variants[name] = _lightly_variant(args, cfg, dataset, w, device, NTXentLoss, only is None)
    return variants


def _lightly_variant(args, cfg, dataset, workers, device, loss_class, persistent):
    sampler = RandomSubset(len(dataset), args.lightly_steps * args.batch, args.seed)
    loader = DataLoader(dataset, batch_size=args.batch, sampler=sampler, num_workers=workers,
                        persistent_workers=persistent and workers > 0, pin_memory=device.type == "cuda",
                        drop_last=True)
    step = Step(cfg, device, len(dataset), loss_fn=loss_class(temperature=cfg.loss.temperature))

    def measure():
        start = timing.clock(device)
        for view1, view2 in loader:
            x = torch.cat([view1.to(device, non_blocking=True), view2.to(device, non_blocking=True)])
            step(x.contiguous(memory_format=torch.channels_last))
        return timing.clock(device) - start
    return measure


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--widths", type=float, nargs="+", default=[0.25, 1.0])
    p.add_argument("--lightly-widths", type=float, nargs="*", default=[0.25])
    p.add_argument("--loop-steps", type=int, default=6, help="timed steps per train() call")
    p.add_argument("--train-warmup", type=int, default=3, help="untimed first steps of each train() call")
    p.add_argument("--lightly-steps", type=int, default=10,
                   help="steps per lightly measurement, timed from the DataLoader's start as in an epoch")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--repeats", type=int, default=8, help="interleaved repeats at width 0.25")
    p.add_argument("--repeats-other", type=int, default=4, help="interleaved repeats at other widths")
    p.add_argument("--precision", default="auto", choices=["auto", "no", "bf16", "fp16"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--no-train-call", action="store_true", help="leave out the train() row")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--memory-of", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.repeats_at = {w: args.repeats if w == 0.25 else args.repeats_other for w in args.widths}
    return args


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        cpu_cache.install()    # for every variant alike, as train() installs it for itself
    if args.memory_of:
        measure = build_variants(args, args.widths[0], device, only=args.memory_of)[args.memory_of]
        with memory.PeakMemory(device) as peak:
            measure()
        memory.report(peak)
        return

    print("\n".join(machine.describe(device)))
    print(f"mixed precision: {resolve_precision(args.precision, device)}, channels_last")
    print(f"load before: {machine.load_average()}")
    summaries = []
    for width in args.widths:
        print(f"\n## ResNet-18 (CIFAR stem) width {width:g}x, batch {args.batch} (= {2 * args.batch} views), "
              f"{args.repeats_at[width]} interleaved repeats")
        variants = build_variants(args, width, device)
        if args.no_train_call:
            variants.pop(TRAIN)
        seconds = timing.run_interleaved(variants, args.repeats_at[width])
        rows = [timing.Row(name, secs, args.batch * timed_steps(args, name)) for name, secs in seconds.items()]
        if not args.no_memory:
            child_argv = memory.replace_option(argv, "--widths", [str(width)])
            for row in rows:
                row.memory_mib = memory.headline_mib(memory.in_fresh_process(__file__, child_argv, row.name), device)
        print("\nimages/s (each image -> 2 views); peak mem: extra memory of one measurement in a fresh process "
              "(host: main peak RSS + workers' USS; the train() row includes loading the dataset and building "
              "the model)")
        print(timing.table(rows, "images/s", reference=PREMADE, label="pre-made"))
        by_name = {r.name: r for r in rows}
        ratio = by_name[PIPELINE].median_rate / by_name[PREMADE].median_rate
        paired = timing.paired_ratio(by_name[PIPELINE], by_name[PREMADE])
        summaries.append(f"{width:g}x: pipeline / pre-made = {ratio:.1%} (ratio of medians), {paired:.1%} (median "
                         f"of per-repeat ratios); target >= {PREMADE_TARGET:.0%}: "
                         + ("meets" if min(ratio, paired) >= PREMADE_TARGET else
                            f"misses by {PREMADE_TARGET - min(ratio, paired):.1%} points"))
        if TRAIN in by_name:
            summaries.append(f"{width:g}x: train() / pre-made = "
                             f"{by_name[TRAIN].median_rate / by_name[PREMADE].median_rate:.1%} (median)")
        if any(n.startswith(LIGHTLY) for n in by_name):
            ref = timing.best(rows, LIGHTLY)
            speedup = by_name[PIPELINE].median_rate / ref.median_rate
            paired = timing.paired_ratio(by_name[PIPELINE], ref)
            summaries.append(f"{width:g}x: pipeline / best lightly loop ({ref.name}) = {speedup:.2f}x (ratio of "
                             f"medians), {paired:.2f}x (median of per-repeat ratios); target >= {LIGHTLY_TARGET:g}x: "
                             + ("meets" if min(speedup, paired) >= LIGHTLY_TARGET
                                else f"misses (by {LIGHTLY_TARGET / min(speedup, paired):.2f}x)"))
    print("\n" + "\n".join(summaries))
    print(f"load after: {machine.load_average()}")


if __name__ == "__main__":
    main()
