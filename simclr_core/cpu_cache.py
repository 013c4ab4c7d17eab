"""Freed CPU tensors of 2 MiB and more are kept for the next training step instead of going back to the kernel.

A training step allocates and frees the same activations every step (16 MiB each in the first stage of
ResNet-18 x0.25 at batch 256). PyTorch's CPU allocator hands such blocks to glibc, which maps each one
afresh and unmaps it on free, so the next step faults its pages in and the kernel zeroes them again.
cpu_cache.cpp is a caching allocator for CPU tensors, as PyTorch has one for GPUs: blocks of 2 MiB and
more, in whole 2 MiB-aligned huge-page units, are kept when freed and handed out again (the smallest idle
block that fits and is at most 1/8 larger); smaller requests go to torch's allocator as before. Measured
on the 2-core reference CPU (benchmarks/bench_cpu_cache.py, RESULTS.md "CPU block cache"): per x0.25
step 6,600 page faults and 64 ms of system time become 0 and 0 ms, 1.11x the speed (per repeat); per x1
step 24,000 faults and 1.8 s of system time become 0 and 3 ms, 1.29x.

Session 7 had tuned glibc instead (mmap threshold 32 MiB, trim threshold 2 GiB). That reused a block only
while glibc's leftovers from torch's aligned allocations stayed out of its thread cache; in 6 of 40
processes of a 24 MiB allocate-and-free test the heap grew by the tensor's size step after step instead,
and CI caught it. The block cache has no such state: a freed block is reused, or unmapped.

`install()` runs at the start of `train()` on CPUs (and of the benchmarks). It needs Linux and the C++
build (a compiler, ~30 s once, cached by torch); without them, or with SIMCLR_CPU_CACHE=0, torch's
allocator stays. The memory it keeps is bounded three ways: live + idle blocks stay within twice the
highest live total so far (a request that fits no idle block first unmaps the longest-idle ones); idle
blocks within `max_idle_bytes` (default: a quarter of physical memory, or SIMCLR_CPU_CACHE_MAX_IDLE_MB),
the largest unmapped first; and a block idle through STALE_AFTER allocations is unmapped. `release_idle()`
unmaps every idle block, as torch.cuda.empty_cache() does on a GPU: `train()` calls it around each
evaluation (whose sizes differ from the step's) and when it returns. Idle blocks count in the
process's resident memory, as the GPU cache's do in nvidia-smi (x0.25: 388 MiB of blocks for a step whose
live peak is 304 MiB, yet a lower peak RSS than torch's allocator, 1,122 vs 1,268 MiB; x1: 2,507 vs
2,309 MiB). Huge pages are asked for (madvise) where hugepages.py asks torch for them.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from simclr_core.hugepages import ENV_VAR as HUGE_PAGES_VAR
from simclr_core.native_build import LazyExtension, build_name, compile_extension

SOURCE = Path(__file__).with_name("cpu_cache.cpp")
SWITCH = "SIMCLR_CPU_CACHE"
MAX_IDLE_VAR = "SIMCLR_CPU_CACHE_MAX_IDLE_MB"
MIN_BYTES = 2 << 20
# A block idle through this many allocations of 2 MiB and more is unmapped: a training step of ResNet-18
# makes ~100, so a size the step uses is never stale, while another run's or an evaluation's sizes go.
STALE_AFTER = 8192
_installed_once = False

extension = LazyExtension(SWITCH, lambda: compile_extension(build_name("simclr_cpu_cache", SOURCE), SOURCE,
                                                            openmp=False),
                          fallback="torch's CPU allocator (freed activations are faulted in again each step)",
                          off_means="torch's CPU allocator", on_means="the block cache")


def install(max_idle_bytes: int | None = None) -> bool:
    """Route CPU tensors of 2 MiB and more through the block cache; True if it is in place. Idempotent:
    a second call only changes the cap."""
    if max_idle_bytes is None:
        max_idle_bytes = default_max_idle_bytes()
    if max_idle_bytes < 0:
        raise ValueError(f"max_idle_bytes must be >= 0, got {max_idle_bytes}")
    global _installed_once
    compiled = _compiled()
    if compiled is None:
        return False
    _installed_once = True
    return compiled.install(MIN_BYTES, max_idle_bytes, STALE_AFTER, os.environ.get(HUGE_PAGES_VAR) == "1")


def uninstall() -> bool:
    """Give new CPU allocations back to the allocator the cache replaced (blocks still alive come back to the
    cache when freed). True if the cache was installed."""
    compiled = _compiled()
    return compiled is not None and compiled.uninstall()


def installed() -> bool:
    compiled = _compiled()
    return compiled is not None and compiled.installed()


def release_idle() -> int:
    """Unmap every idle block (torch.cuda.empty_cache's counterpart); the bytes given back. Builds nothing
    where the cache was never installed."""
    compiled = _compiled() if _installed_once else None
    return 0 if compiled is None else compiled.release_idle()


def stats() -> dict[str, int]:
    """live/idle bytes and blocks, and how many blocks were mapped, reused and unmapped so far."""
    compiled = _compiled()
    return {} if compiled is None else dict(compiled.stats())


def _compiled():
    """The built extension; None off Linux (it maps with mmap), with the switch at 0, or without a build."""
    return extension() if sys.platform.startswith("linux") else None


def default_max_idle_bytes() -> int:
    setting = os.environ.get(MAX_IDLE_VAR)
    if setting is not None:
        try:
            megabytes = int(setting)
        except ValueError:
            megabytes = -1
        if megabytes < 0:
            raise ValueError(f"{MAX_IDLE_VAR} must be a whole number of MiB >= 0, got {setting!r}")
        return megabytes << 20
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):   # no sysconf (Windows): 4 GiB
        return 4 << 30
