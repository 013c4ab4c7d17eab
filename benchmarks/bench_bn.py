"""The fused BatchNorm + residual + ReLU (simclr_core/models/fused_bn.py) against eager PyTorch, per layer and per step.

Two tables, interleaved repeats (median/min/max):
  per layer  BatchNorm [+ residual] + ReLU forward + backward on one activation of ResNet-18's four stages at
             --batch views of 32 px, channels_last, in --dtype: the fused kernels vs nn.BatchNorm2d, add and
             ReLU as separate eager ops (what the encoders ran before);
  per step   a whole pretraining step on pre-made views (forward under autocast, NT-Xent, backward, LARS)
             of ResNet-18 at each --widths, with the fused kernels and with the eager ops, alternating step
             by step in one process on one model.

Run by hand:
    .venv/bin/python benchmarks/bench_bn.py [--widths 0.25 0.5] [--repeats 12]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import simclr_core  # noqa: F401  (first: it requests huge pages before torch allocates, see simclr_core/hugepages.py)
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402
import timing  # noqa: E402
from steps import Step  # noqa: E402

from simclr_core.config import EncoderConfig, EvalConfig, RunConfig  # noqa: E402
from simclr_core.models import fused_bn  # noqa: E402

FUSED, EAGER = "fused kernels", "eager BatchNorm, add, ReLU"


def layer_variants(compiled, channels: int, side: int, views: int, dtype: torch.dtype, residual: bool):
    g = torch.Generator().manual_seed(channels)
    shape = (views, channels, side, side)
    x = torch.randn(shape, generator=g).to(dtype).contiguous(memory_format=torch.channels_last).requires_grad_()
    r = (torch.randn(shape, generator=g).to(dtype).contiguous(memory_format=torch.channels_last).requires_grad_()
         if residual else None)
    grad = torch.randn(shape, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
    bn = torch.nn.BatchNorm2d(channels)

    def measure(kernels):
        def run() -> float:
            fused_bn.kernels = kernels
            start = timing.clock(x.device)
            fused_bn.batch_norm_act(bn, x, r).backward(grad)
            x.grad = None
            if r is not None:
                r.grad = None
            return timing.clock(x.device) - start
        return run
    return {FUSED: measure(lambda: compiled), EAGER: measure(lambda: None)}


def step_variants(compiled, width: float, views: int):
    cfg = RunConfig(encoder=EncoderConfig(width=width), eval=EvalConfig(protocols=()), batch_size=views // 2)
    step = Step(cfg, torch.device("cpu"))
    x = torch.randn(views, 3, 32, 32).contiguous(memory_format=torch.channels_last)

    def measure(kernels):
        def run() -> float:
            fused_bn.kernels = kernels
            start = timing.clock(x.device)
            step(x)
            return timing.clock(x.device) - start
        return run
    return {FUSED: measure(lambda: compiled), EAGER: measure(lambda: None)}


def report(title: str, seconds: dict[str, list[float]], work: float, unit: str) -> None:
    rows = {name: timing.Row(name, s, work) for name, s in seconds.items()}
    print(f"\n## {title}\n")
    print(timing.table(list(rows.values()), unit, reference=EAGER, label="eager"))
    paired = statistics.median(e / f for e, f in zip(seconds[EAGER], seconds[FUSED]))
    print(f"fused / eager speed: {rows[FUSED].median_rate / rows[EAGER].median_rate:.2f}x (ratio of medians), "
          f"{paired:.2f}x (median of per-repeat ratios)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--widths", type=float, nargs="+", default=[0.25])
    p.add_argument("--batch", type=int, default=256, help="images per step (2x as many views)")
    p.add_argument("--repeats", type=int, default=12)
    p.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    args = p.parse_args(argv)
    compiled = fused_bn.kernels()
    if compiled is None:
        sys.exit(f"the fused kernels are not available here (g++ and ninja, {fused_bn.SWITCH} unset or 1)")
    print("\n".join(machine.describe(torch.device("cpu"))))
    views, dtype = 2 * args.batch, getattr(torch, args.dtype)
    # Each measurement sets fused_bn.kernels to the compiled module or to "none", so the two alternate.
    for channels, side in ((16, 32), (32, 16), (64, 8), (128, 4)):
        for residual in (False, True):
            variants = layer_variants(compiled, channels, side, views, dtype, residual)
            seconds = timing.run_interleaved(variants, args.repeats, log=lambda _: None)
            report(f"{channels} channels at {side}x{side}, {views} views, {args.dtype}, BatchNorm"
                   f"{' + residual' if residual else ''} + ReLU, forward + backward", seconds, 1.0, "layers/s")
    for width in args.widths:
        seconds = timing.run_interleaved(step_variants(compiled, width, views), args.repeats, log=lambda _: None)
        report(f"ResNet-18 x{width:g} training step on pre-made views, batch {args.batch} ({views} views of "
               f"32 px), bf16 autocast where native, channels_last", seconds, args.batch, "images/s")
    print(f"\nload after: {machine.load_average()}")


if __name__ == "__main__":
    main()
