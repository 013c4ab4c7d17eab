"""The step against the chip's limit: matmul ceiling, the step on pre-made views, and the pipeline feeding it.

Issue 20's table, one block per preset (ResNet-50 x1 at 224 px, batch 256; ResNet-18 x1 at 32 px, batch 512,
the CIFAR stem; on CPUs the cpu scale's ResNet-18 x0.25 at batch 256), each variant eager and under torch.compile (simclr_core/compiling.py, as train() applies it):
  pre-made   the step of train() on two fixed, already augmented views (no data, no augmentation): model under
             autocast, NT-Xent, warm-up/cosine lr, LARS;
  pipeline   what train() does per step on a dataset that fits the device: gather the batch from uint8 images
             resident there (side 256 for 224 px views, 32 for CIFAR), build_augmentation writing both views
             into one reused tensor, then the same step (views_ahead=off);
  ahead      the same pipeline with each step's views made while the previous step runs, on a side CUDA
             stream (views_ahead=on, simclr_core/augment/ahead.py; on a CPU it runs in order, as a rehearsal).
"% of peak" is the step's FLOPs (torch's FlopCounterMode over one forward + backward: convolutions and matrix
products) times the step rate, over the matrix-product ceiling measured first (an n x n x n product) in the
precision the steps run in: bf16 on GPUs and on CPUs with native bf16, else float32.
Targets (issue 20, one H100/H200-class GPU): ResNet-50 pre-made >= 25% of the ceiling; pipeline >= 95% of
pre-made at both sizes (the better of pipeline and ahead). On a CPU the same script runs at tiny sizes as a
rehearsal (`--tiny`).

    python benchmarks/bench_step.py [--device cuda] [--presets r50-224 r18-32] [--compile default] [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import simclr_core  # noqa: F401  (first: it requests huge pages before torch allocates, see simclr_core/hugepages.py)
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402
import timing  # noqa: E402
from steps import Step  # noqa: E402

from simclr_core import cpu_cache  # noqa: E402
from simclr_core.augment import build_augmentation  # noqa: E402
from simclr_core.augment.ahead import views_ahead  # noqa: E402
from simclr_core.compiling import COMPILE_MODES  # noqa: E402
from simclr_core.config import RunConfig  # noqa: E402
from simclr_core.data.catalog import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from simclr_core.precision import autocast_dtype, resolve_precision  # noqa: E402
from simclr_core.seeding import step_seed  # noqa: E402

PREMADE_PEAK_TARGET, PIPELINE_TARGET = 0.25, 0.95


@dataclass(frozen=True)
class Preset:
    encoder: str
    width: float
    size: int          # view side
    source: int        # side of the resident uint8 images the pipeline crops from
    batch: int
    ops: tuple[str, ...]
    color_strength: float


PRESETS = {
    "r50-224": Preset("resnet50", 1.0, 224, 256, 256, ("crop", "color", "blur"), 1.0),
    "r18-32": Preset("resnet18", 1.0, 32, 32, 512, ("crop", "color"), 0.5),
    "cpu-scale": Preset("resnet18", 0.25, 32, 32, 256, ("crop", "color"), 0.5),     # the cpu scale's runs
}
# --tiny: the same code at sizes a 2-core CPU runs in about a minute.
TINY = {"r50-224": Preset("resnet50", 0.25, 64, 72, 8, ("crop", "color", "blur"), 1.0),
        "r18-32": Preset("resnet18", 0.25, 32, 32, 32, ("crop", "color"), 0.5),
        "cpu-scale": Preset("resnet18", 0.25, 32, 32, 32, ("crop", "color"), 0.5)}


def matmul_ceiling(device: torch.device, n: int, dtype=torch.bfloat16, products: int = 10) -> float:
    """FLOP/s of n x n x n products on random data, after three untimed ones."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    start = timing.clock(device)
    for _ in range(products):
        a @ b
    return 2 * n ** 3 * products / (timing.clock(device) - start)


def step_flops(step: Step, views: torch.Tensor) -> int:
    """FLOPs of one forward + backward of `step`'s model on `views` (counted, not timed; no update)."""
    with FlopCounterMode(display=False) as counter:
        with torch.autocast(views.device.type, dtype=step.dtype or torch.bfloat16, enabled=step.dtype is not None):
            _, z = step.model(views)
        z.float().sum().backward()
    step.model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def bench_preset(name: str, preset: Preset, device: torch.device, compile_mode: str, steps: int, repeats: int,
                 peak: float) -> None:
    cfg = RunConfig().with_overrides({
        "encoder.name": preset.encoder, "encoder.width": preset.width, "batch_size": preset.batch,
        "augment.ops": preset.ops, "augment.color_strength": preset.color_strength})
    b, size = preset.batch, preset.size
    print(f"\n== {name}: {preset.encoder} x{preset.width:g}, {size} px views, batch {b} ({2 * b} views), "
          f"{steps} steps per measurement; compiled = torch.compile mode {compile_mode!r}")
    steppers = {"eager": Step(cfg.with_overrides({"compile": "off"}), device, image_size=size),
                "compiled": Step(cfg.with_overrides({"compile": compile_mode}), device, image_size=size)}
    augment = build_augmentation(cfg.augment, size, IMAGENET_MEAN, IMAGENET_STD)
    pool = torch.randint(0, 256, (4 * b, 3, preset.source, preset.source), dtype=torch.uint8, device=device)
    premade = torch.randn((2 * b, 3, size, size), device=device).contiguous(memory_format=torch.channels_last)
    flops = step_flops(steppers["eager"], premade)
    generator, draws = torch.Generator(), {"n": 0}

    def batches():
        """Gathered uint8 batches, as train()'s resident path yields them (a fresh draw each step)."""
        for _ in range(steps):
            draws["n"] += 1
            generator.manual_seed(step_seed(0, draws["n"], 0))
            index = torch.randint(len(pool), (b,), generator=generator).to(device, non_blocking=True)
            yield draws["n"], pool.index_select(0, index)

    def make_views(step, batch, buffers) -> None:
        augment(batch, generator, out=buffers[0])

    def new_buffers():
        return (torch.empty((2 * b, 3, size, size), device=device, memory_format=torch.channels_last),)

    def run(stepper: Step, kind: str) -> float:
        start = timing.clock(device)
        if kind == "pre-made":
            for _ in range(steps):
                stepper(premade)
        else:
            for _, (views,) in views_ahead(batches(), make_views, new_buffers, ahead=kind == "ahead",
                                           device=device):
                stepper(views)
        return timing.clock(device) - start

    variants = {f"{kind}, {mode}": (lambda s=stepper, k=kind: run(s, k))
                for mode, stepper in steppers.items() for kind in ("pre-made", "pipeline", "ahead")}
    start = timing.clock(device)
    steppers["compiled"](premade)
    print(f"  compiling: the compiled model's first step took {timing.clock(device) - start:.1f} s")
    seconds = timing.run_interleaved(variants, repeats)
    rows = [timing.Row(n, s, steps * b) for n, s in seconds.items()]
    print(timing.table(rows, "images/s", reference="pre-made, eager", label="pre-made eager"))
    per_image = flops / b
    for row in rows:
        print(f"  {row.name:20s} {per_image * row.median_rate / 1e12:8.2f} TFLOP/s = "
              f"{100 * per_image * row.median_rate / peak:5.1f}% of the ceiling")
    by = {r.name: r for r in rows}
    best = max(("eager", "compiled"), key=lambda m: by[f"pre-made, {m}"].median_rate)
    fed = max(("pipeline", "ahead"), key=lambda k: by[f"{k}, {best}"].median_rate)
    summary = [f"step FLOPs {flops / 1e12:.3f} T per {b} images",
               f"compiled / eager pre-made = {timing.paired_ratio(by['pre-made, compiled'], by['pre-made, eager']):.2f}",
               f"ahead / pipeline ({best}) = {timing.paired_ratio(by[f'ahead, {best}'], by[f'pipeline, {best}']):.2f}",
               f"{fed} / pre-made ({best}) = "
               f"{timing.paired_ratio(by[f'{fed}, {best}'], by[f'pre-made, {best}']):.2f} (target >= {PIPELINE_TARGET})"]
    if preset.encoder == "resnet50":
        share = per_image * by[f"pre-made, {best}"].median_rate / peak
        summary.append(f"pre-made ({best}) = {100 * share:.1f}% of the ceiling "
                       f"(target >= {100 * PREMADE_PEAK_TARGET:.0f}%)")
    print("  " + "; ".join(summary))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--presets", nargs="+", default=None, choices=list(PRESETS),
                   help="default: r50-224 r18-32 on CUDA, cpu-scale on a CPU")
    p.add_argument("--compile", default="default", choices=[m for m in COMPILE_MODES if m not in ("auto", "off")],
                   help="the torch.compile mode of the compiled rows")
    p.add_argument("--steps", type=int, default=8, help="steps per measurement")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--matmul", type=int, default=None, help="side n of the ceiling's products (8192 on CUDA)")
    p.add_argument("--tiny", action="store_true", help="tiny models and batches: a rehearsal on a CPU")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        cpu_cache.install()          # as train() does on CPUs
    print("\n".join(machine.describe(device)))
    n = args.matmul or (8192 if device.type == "cuda" else 1024)
    # The ceiling in the precision the steps run in: bf16 on GPUs and CPUs with native bf16, else float32.
    dtype = autocast_dtype(resolve_precision(RunConfig().precision, device)) or torch.float32
    peak = matmul_ceiling(device, n, dtype)
    print(f"{str(dtype).removeprefix('torch.')} matrix-product ceiling: {peak / 1e12:.2f} TFLOP/s "
          f"({n} x {n} x {n}, random data)")
    presets = TINY if args.tiny else PRESETS
    for name in args.presets or (["r50-224", "r18-32"] if device.type == "cuda" else ["cpu-scale"]):
        bench_preset(name, presets[name], device, args.compile, args.steps, args.repeats, peak)


if __name__ == "__main__":
    main()
