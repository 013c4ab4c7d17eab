"""Freed CPU tensors of 2 MiB and more are kept for the next training step instead of going back to the kernel.

A training step allocates and frees the same activations every step (16 MiB each in the first stage of
ResNet-18 x0.25 at batch 256). PyTorch's CPU allocator hands such blocks to glibc, which maps each one
afresh and unmaps it on free, so the next step faults its pages in and the kernel zeroes them again: on the
2-core reference CPU, 5,900-8,600 page faults and 60-87 ms of system time per x0.25 step. cpu_cache.cpp is
a caching allocator for CPU tensors, as PyTorch has for GPUs: blocks of 2 MiB and more, whole 2 MiB-aligned
huge-page units, are kept when freed and handed out again (smallest idle block that fits, at most 1/8
larger); smaller ones go to torch's allocator as before. Measured: benchmarks/RESULTS.md ("CPU block
cache").

Session 7 had tuned glibc instead (mmap threshold 32 MiB, trim threshold 2 GiB). That reused the blocks
only as long as glibc's aligned-allocation remainders did not land in its thread cache: in about one
process in seven the heap grew by the tensor's size at every step instead (400 MiB in 44 steps of the
24 MiB test), and CI caught it. The block cache has no such state: a freed block is reused, or unmapped.

`install()` runs at the start of `train()` (and of the benchmarks). It needs the C++ build (a compiler,
~30 s once, cached by torch); without it, or with SIMCLR_CPU_CACHE=0, torch's allocator stays. Idle blocks
are capped at `max_idle_bytes` (default: a quarter of physical memory; SIMCLR_CPU_CACHE_MAX_IDLE_MB), the
largest unmapped first; `release_idle()` unmaps them all. Huge pages are asked for (madvise) where
hugepages.py asks torch for them. Memory freed to the cache stays in the process's resident set, as the
GPU cache's does in nvidia-smi.
"""
from __future__ import annotations

import os
from pathlib import Path

from simclr_core.hugepages import ENV_VAR as HUGE_PAGES_VAR
from simclr_core.native_build import LazyExtension, build_name, compile_extension

SOURCE = Path(__file__).with_name("cpu_cache.cpp")
SWITCH = "SIMCLR_CPU_CACHE"
MAX_IDLE_VAR = "SIMCLR_CPU_CACHE_MAX_IDLE_MB"
MIN_BYTES = 2 << 20

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
    compiled = extension()
    if compiled is None:
        return False
    return compiled.install(MIN_BYTES, max_idle_bytes, os.environ.get(HUGE_PAGES_VAR) == "1")


def uninstall() -> bool:
    """Give new CPU allocations back to the allocator the cache replaced (blocks still alive come back to the
    cache when freed). True if the cache was installed."""
    compiled = extension()
    return compiled is not None and compiled.uninstall()


def installed() -> bool:
    compiled = extension()
    return compiled is not None and compiled.installed()


def release_idle() -> int:
    """Unmap every idle block; the bytes given back."""
    compiled = extension()
    return 0 if compiled is None else compiled.release_idle()


def stats() -> dict[str, int]:
    """live/idle bytes and blocks, and how many blocks were mapped, reused and unmapped so far."""
    compiled = extension()
    return {} if compiled is None else dict(compiled.stats())


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
