"""Peak extra memory of one measurement, taken in a fresh process per variant.

Host memory: the process's peak resident set (Linux VmHWM, reset on entry by writing 5 to
/proc/self/clear_refs) minus its resident set on entry, plus the largest sampled total of the unique set
sizes (USS: pages no other process shares) of its child processes, i.e. DataLoader workers, sampled every
`interval` seconds (a spike shorter than that can be missed). USS counts what a forked worker allocates
or copies, not the parent's pages it merely shares. Device memory: CUDA max_memory_allocated minus
memory_allocated on entry.

A fresh process per variant keeps one variant's freed-but-cached memory (allocator caches, malloc arenas)
from hiding another's peak.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import threading

import psutil
import torch

MARK = "PEAK_MEMORY_JSON "
MIB = float(1 << 20)


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _children_uss() -> int:
    total = 0
    for child in psutil.Process().children(recursive=True):
        try:
            total += child.memory_full_info().uss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return total


class PeakMemory:
    """``with PeakMemory(device) as peak: work()``, then ``peak.result()`` (MiB)."""

    def __init__(self, device: torch.device, interval: float = 0.02):
        self.device, self.interval = device, interval
        self._stop = threading.Event()
        self._children_peak = 0

    def __enter__(self) -> "PeakMemory":
        self.exact = _reset_peak_rss()
        self._rss0 = psutil.Process().memory_info().rss
        self._maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self._children0 = _children_uss()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._cuda0 = torch.cuda.memory_allocated(self.device)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._children_peak = max(self._children_peak, _children_uss() - self._children0)

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.cuda_delta = torch.cuda.max_memory_allocated(self.device) - self._cuda0
        self._stop.set()
        self._thread.join()
        if self.exact:
            self.main_delta = _status_bytes("VmHWM") - self._rss0
        else:  # no clear_refs: the lifetime peak, which only tells when this block set a new one
            self.main_delta = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self._rss0

    def result(self) -> dict:
        out = {"host_mib": (self.main_delta + max(self._children_peak, 0)) / MIB,
               "main_mib": self.main_delta / MIB, "workers_uss_mib": max(self._children_peak, 0) / MIB,
               "exact_main_peak": self.exact}
        if self.device.type == "cuda":
            out["cuda_mib"] = self.cuda_delta / MIB
        return out


def report(peak: PeakMemory) -> None:
    """Print the result where `in_fresh_process` finds it."""
    print(MARK + json.dumps(peak.result()), flush=True)


def in_fresh_process(script: str, argv: list[str], variant: str, timeout: float = 900) -> dict | None:
    """Run ``script argv --memory-of variant`` in a new interpreter and return the result it reports."""
    done = subprocess.run([sys.executable, script, *argv, "--memory-of", variant], capture_output=True,
                          text=True, timeout=timeout)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    print(f"  memory of {variant!r} not measured (exit {done.returncode}): {done.stderr[-2000:]}")
    return None


def replace_option(argv: list[str], option: str, values: list[str]) -> list[str]:
    """argv with ``option``'s values replaced by ``values`` (for a child that measures one case)."""
    out, skipping = [], False
    for a in argv:
        if a == option:
            skipping = True
            continue
        if skipping and not a.startswith("--"):
            continue
        skipping = False
        out.append(a)
    return out + [option, *values]


def headline_mib(result: dict | None, device: torch.device) -> float | None:
    """The number a table shows: device memory on CUDA, host memory otherwise."""
    if result is None:
        return None
    return result["cuda_mib"] if device.type == "cuda" else result["host_mib"]
