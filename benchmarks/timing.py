"""Interleaved repeats and the table every benchmark prints.

Each variant is a callable that does one measurement's work and returns its own elapsed seconds (so it
can leave set-up out and synchronise an accelerator before stopping the clock). Repeats are interleaved
(A B C, B C A, C A B, ...), so a slow spell of a shared machine hits every variant alike instead of
one; each variant reports the median, min and max over its repeats, and `paired_ratio` compares two
variants repeat by repeat.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
from tabulate import tabulate


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock(device: torch.device) -> float:
    """perf_counter after the device's queued work is done."""
    synchronize(device)
    return time.perf_counter()


def run_interleaved(variants: dict[str, Callable[[], float]], repeats: int, warmup: int = 1,
                    log: Callable[[str], None] = print) -> dict[str, list[float]]:
    """{name: [seconds of each repeat]}; every variant first runs ``warmup`` untimed measurements."""
    names = list(variants)
    for name in names:
        for _ in range(warmup):
            variants[name]()
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            seconds[name].append(variants[name]())
        log(f"  repeat {r + 1}/{repeats}: " + ", ".join(f"{n} {seconds[n][-1]:.3f}s" for n in names))
    return seconds


@dataclass
class Row:
    """One variant's result: ``work`` items (images, steps) per measurement, one time per repeat."""
    name: str
    seconds: list[float]
    work: float
    memory_mib: float | None = None

    @property
    def rates(self) -> list[float]:
        return [self.work / s for s in self.seconds]

    @property
    def median_rate(self) -> float:
        return statistics.median(self.rates)


def table(rows: list[Row], unit: str, reference: str | None = None, label: str | None = None) -> str:
    """A GitHub-markdown table: rate median/min/max, ratio of medians to row ``reference`` (headed
    ``x label``), peak memory."""
    ref = next((r for r in rows if r.name == reference), None)
    headers = ["variant", f"median {unit}", "min", "max", "median s", "repeats"]
    if ref is not None:
        headers.append(f"x {label or reference}")
    headers.append("peak mem delta MiB")
    body = []
    for r in rows:
        line = [r.name, _rate(r.median_rate), _rate(min(r.rates)), _rate(max(r.rates)),
                f"{statistics.median(r.seconds):.3f}", len(r.seconds)]
        if ref is not None:
            line.append(f"{r.median_rate / ref.median_rate:.2f}")
        line.append("-" if r.memory_mib is None else f"{r.memory_mib:,.1f}")
        body.append(line)
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


def paired_ratio(a: Row, b: Row) -> float:
    """Median over repeats of rate(a) / rate(b) within the same repeat: a and b ran back to back, so this
    cancels most of a shared machine's slow spells (which a ratio of medians does not)."""
    return statistics.median(x / y for x, y in zip(a.rates, b.rates))


def _rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def best(rows: list[Row], prefix: str) -> Row:
    """The row with the highest median rate among those whose name starts with ``prefix``."""
    candidates = [r for r in rows if r.name.startswith(prefix)]
    return max(candidates, key=lambda r: r.median_rate)
