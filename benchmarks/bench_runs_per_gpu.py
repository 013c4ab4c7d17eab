"""Aggregate runs per hour of a grid on this machine's GPUs with 1, 2 and 4 runs per GPU (`--runs-per-gpu`).

For each k, the registry's LocalExecutor trains G x k x --rounds short runs (the same config, different seeds)
into a fresh results folder, k at a time on each of the G GPUs, and the wall clock from the first start to the
last end gives runs/hour: what a grid of small runs gains from sharing a GPU. Every run is whole: process
start, data, --steps steps, its final kNN evaluation. A k whose runs would not fit in a GPU's memory
(registry/run_memory.py's estimate) is reported and skipped. Without a GPU it refuses (exit code 2).

Default run: ResNet-18 1x on the embedded 5,000-image CIFAR-10 subset (no network), batch 256, 200 steps.

    .venv/bin/python benchmarks/bench_runs_per_gpu.py [--runs-per-gpu 1 2 4] [--rounds 2] [--steps 200] \\
        [key=value ...]                # config overrides, e.g. encoder.width=0.5 batch_size=512
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from registry.overrides import parse_overrides  # noqa: E402
from registry.declare import Run  # noqa: E402
from registry.launch import LocalExecutor  # noqa: E402
from registry.placement import plan_placement, visible_gpus  # noqa: E402
from simclr_core.config import RunConfig  # noqa: E402
from simclr_core.validation import ConfigError  # noqa: E402

DEFAULTS = {"data.dataset": "cifar10_subset", "batch_size": 256, "epochs": 100, "checkpoint_every_steps": 10**6}


def make_runs(cfg: RunConfig, k: int, count: int) -> list[Run]:
    return [Run(f"bench/k{k}-s{seed}-{seed:012d}", "bench", "bench", {"seed": seed},
                cfg.with_overrides({"seed": seed})) for seed in range(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-per-gpu", type=int, nargs="+", default=[1, 2, 4], metavar="K")
    parser.add_argument("--rounds", type=int, default=2, help="runs per slot for each k (default 2)")
    parser.add_argument("--steps", type=int, default=200, help="training steps per run (max_steps; default 200)")
    parser.add_argument("--results-dir", default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)
    gpus = visible_gpus()
    if not gpus:
        print("bench_runs_per_gpu: refused: torch sees no GPU on this machine (CUDA_VISIBLE_DEVICES="
              f"{os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}); it measures runs/hour of GPUs shared by "
              "k runs, so it needs one. On CPUs, `python -m registry run NAME --max-parallel K` runs K at once.",
              file=sys.stderr)
        return 2
    try:
        cfg = RunConfig().with_overrides({**DEFAULTS, "max_steps": args.steps, **parse_overrides(args.overrides)})
        cfg.validate()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    root = Path(args.results_dir or tempfile.mkdtemp(prefix="bench-runs-per-gpu-"))
    print(f"{len(gpus)} GPU(s): " + "; ".join(gpu.describe() for gpu in gpus))
    print(f"run: {cfg.encoder.name} x{cfg.encoder.width:g}, {cfg.data.dataset}, batch {cfg.batch_size}, "
          f"{args.steps} steps, eval {', '.join(cfg.eval.protocols) or 'none'}; results in {root}")
    print(f"{'runs/GPU':>8} {'runs':>5} {'wall s':>8} {'runs/hour':>10} {'vs first':>9}  outcome")
    first = None
    for k in args.runs_per_gpu:
        try:
            placement = plan_placement(runs_per_gpu=k)
            runs = make_runs(cfg, k, placement.workers * args.rounds)
            placement.check_memory(runs)
        except ConfigError as exc:
            print(f"{k:>8} skipped: {exc}")
            continue
        start = time.perf_counter()
        outcomes = LocalExecutor(placement=placement).dispatch(runs, root / f"k{k}")
        wall = time.perf_counter() - start
        rate = len(runs) / wall * 3600
        first = first or rate
        states = {state: sum(o.state == state for o in outcomes) for state in {o.state for o in outcomes}}
        print(f"{k:>8} {len(runs):>5} {wall:>8.1f} {rate:>10.1f} {rate / first:>8.2f}x  "
              + ", ".join(f"{n} {state}" for state, n in sorted(states.items())), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
