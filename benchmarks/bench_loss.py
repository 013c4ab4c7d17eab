"""NT-Xent forward + backward at 2N = 8192 views, d = 128: simclr_core vs lightly vs a textbook version.

Issue 5 target, measured side by side in one run: simclr_core's time and extra peak memory <= 0.5x
lightly.loss.NTXentLoss's, with the same loss value (relative difference <= 1e-6).

Contenders, all at temperature 0.5 on the same z1, z2 (N, d) float32 leaves:
  simclr_core  simclr_core.losses.nt_xent (custom autograd Function keeping only the exponentiated logits);
  lightly      lightly.loss.NTXentLoss(temperature=0.5) (four N x N logit blocks, concatenated, cross entropy);
  textbook     normalise, z z^T / t, mask the diagonal with -inf, F.cross_entropy against the positive column.
Every value is also compared with the textbook formula in float64, gradients included.

Memory: extra peak host memory (CUDA: device memory) of one forward + backward in a fresh process per
variant, inputs already allocated; see memory.py for how it is taken.

Run by hand (lightly is the optional `bench` extra):
    .venv/bin/python benchmarks/bench_loss.py [--views 8192] [--dim 128] [--repeats 7] [--device cuda]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import simclr_core  # noqa: F401  (first: it requests huge pages before torch allocates, see simclr_core/hugepages.py)
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402
import memory  # noqa: E402
import timing  # noqa: E402

from simclr_core.losses import nt_xent  # noqa: E402

OURS, LIGHTLY, TEXTBOOK = "simclr_core nt_xent", "lightly NTXentLoss", "textbook (z z^T, -inf diagonal, CE)"
TARGET = 0.5
VALUE_TOLERANCE = 1e-6


def textbook_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """The formula as most tutorials write it: one (2N, 2N) similarity matrix and a cross entropy."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    positives = (torch.arange(2 * n, device=z.device) + n) % (2 * n)
    return F.cross_entropy(logits, positives)


def losses(temperature: float, only: str | None = None) -> dict:
    fns = {}
    if only in (None, OURS):
        fns[OURS] = lambda z1, z2: nt_xent(z1, z2, temperature=temperature)
    if only in (None, LIGHTLY):
        from lightly.loss import NTXentLoss

        lightly_loss = NTXentLoss(temperature=temperature)
        fns[LIGHTLY] = lambda z1, z2: lightly_loss(z1, z2)
    if only in (None, TEXTBOOK):
        fns[TEXTBOOK] = lambda z1, z2: textbook_nt_xent(z1, z2, temperature)
    return fns


def make_inputs(args, device: torch.device, dtype=torch.float32):
    generator = torch.Generator().manual_seed(args.seed)
    z = torch.randn(2, args.views // 2, args.dim, generator=generator, dtype=torch.float64)
    return [t.to(device=device, dtype=dtype).requires_grad_() for t in z]


def forward_backward(fn, z1, z2) -> torch.Tensor:
    z1.grad = z2.grad = None
    loss = fn(z1, z2)
    loss.backward()
    return loss.detach()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--views", type=int, default=8192, help="2N, the number of views (rows of z1 and z2 together)")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.5)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--memory-of", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.memory_of:
        fn = losses(args.temperature, only=args.memory_of)[args.memory_of]
        z1, z2 = make_inputs(args, device)
        with memory.PeakMemory(device) as peak:
            forward_backward(fn, z1, z2)
        memory.report(peak)
        return

    print("\n".join(machine.describe(device)))
    print(f"load before: {machine.load_average()}")
    print(f"\n## NT-Xent forward + backward, 2N = {args.views}, d = {args.dim}, t = {args.temperature}, "
          f"{args.repeats} interleaved repeats")
    fns = losses(args.temperature)
    z1, z2 = make_inputs(args, device)

    # Values and gradients against the float64 textbook formula.
    r1, r2 = make_inputs(args, device, torch.float64)
    reference = forward_backward(lambda a, b: textbook_nt_xent(a, b, args.temperature), r1, r2)
    ref_grad = torch.cat([r1.grad, r2.grad])
    checks = []
    for name, fn in fns.items():
        value = forward_backward(fn, z1, z2)
        grad = torch.cat([z1.grad, z2.grad]).double()
        rel = abs(float(value) - float(reference)) / abs(float(reference))
        grad_rel = float((grad - ref_grad).abs().max() / ref_grad.abs().max())
        checks.append((name, float(value), rel, grad_rel))
    ours_value = checks[0][1]
    print(f"\nfloat64 reference loss {float(reference):.10f}")
    for name, value, rel, grad_rel in checks:
        print(f"  {name:40s} loss {value:.10f}  rel diff vs float64 {rel:.2e}  vs simclr_core "
              f"{abs(value - ours_value) / abs(ours_value):.2e}  max |grad diff| / max |grad| {grad_rel:.2e}")

    seconds = timing.run_interleaved({name: _timed(fn, z1, z2, device) for name, fn in fns.items()}, args.repeats)
    rows = [timing.Row(name, secs, 1) for name, secs in seconds.items()]
    if not args.no_memory:
        for row in rows:
            row.memory_mib = memory.headline_mib(memory.in_fresh_process(__file__, argv, row.name), device)
    print("\ncalls/s = forward+backward per second; peak mem: extra peak memory of one forward+backward in a "
          f"fresh process ({'CUDA device memory' if device.type == 'cuda' else 'host peak RSS'})")
    print(timing.table(rows, "calls/s", reference=LIGHTLY, label="lightly speed"))

    ours, lightly_row = rows[0], next(r for r in rows if r.name == LIGHTLY)
    time_ratio = lightly_row.median_rate / ours.median_rate
    paired = timing.paired_ratio(lightly_row, ours)
    high = max(time_ratio, paired)
    lines = [f"time: simclr_core / lightly = {time_ratio:.3f} (ratio of medians), {paired:.3f} (median of per-repeat "
             f"ratios); target <= {TARGET}: " + ("meets" if high <= TARGET else f"misses (by {high / TARGET:.2f}x)")]
    if ours.memory_mib is not None and lightly_row.memory_mib:
        mem_ratio = ours.memory_mib / lightly_row.memory_mib
        lines.append(f"memory: simclr_core / lightly = {mem_ratio:.3f}; target <= {TARGET}: "
                     + ("meets" if mem_ratio <= TARGET else f"misses (by {mem_ratio / TARGET:.2f}x)"))
    worst = max(rel for _, _, rel, _ in checks[:2])
    lines.append(f"values: max rel diff vs float64 of simclr_core and lightly = {worst:.2e}; tolerance "
                 f"{VALUE_TOLERANCE:g}: " + ("meets" if worst <= VALUE_TOLERANCE else "misses"))
    print("\n" + "\n".join(lines))
    print(f"load after: {machine.load_average()}")


def _timed(fn, z1, z2, device):
    def measure():
        start = timing.clock(device)
        forward_backward(fn, z1, z2)
        return timing.clock(device) - start
    return measure


if __name__ == "__main__":
    main()
