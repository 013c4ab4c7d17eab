"""Freed CPU tensors stay in the process's heap, so that the next training step reuses pages already mapped.

glibc serves every block above its mmap threshold (128 KiB at the start, raised by frees to at most 32 MiB)
with a fresh mmap and gives it back to the kernel on free; the next block of that size then faults in and
zeroes its pages again. A training step allocates and frees its activations (16 MiB each in the first stage
of ResNet-18 x0.25 at batch 256) every step: measured on the 2-core reference CPU, 5,900-8,600 page faults
and 60-87 ms of system time per step, against 390-570 faults and 30-45 ms with this setting, and 13% less
time per step (0.468 vs 0.540 s; benchmarks/RESULTS.md). The setting: glibc's mmap threshold fixed at its
32 MiB maximum (blocks up to that size come from the heap) and its trim threshold at 2 GiB (the heap's top
is not given back). Larger blocks (224 px batches) keep their own mappings: a 1 GiB threshold put those in
the heap too and fragmented it (two of six 224 px runs at ~0.55x speed with 600 MiB more memory).
The cost is that freed memory stays mapped until the process exits; a training process reaches its peak
every step anyway. It helps where torch's allocator asks for huge pages (hugepages.py, set alongside).

`keep_freed_memory()` runs when `simclr_core` or `registry` is imported. It changes nothing where the user
configured glibc's allocator (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_ or a malloc GLIBC_TUNABLES
entry), where SIMCLR_KEEP_HEAP=0, or where the C library is not glibc.
"""
from __future__ import annotations

import ctypes
import os

SWITCH = "SIMCLR_KEEP_HEAP"
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = (1 << 31) - 1
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3      # glibc's malloc.h
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def keep_freed_memory() -> bool:
    """Apply the setting; True if glibc took it."""
    setting = os.environ.get(SWITCH, "1")
    if setting not in ("0", "1"):
        raise ValueError(f"{SWITCH} must be 0 (glibc's defaults) or 1 (keep freed memory), got {setting!r}")
    if setting == "0" or any(name in os.environ for name in _USER_SETTINGS):
        return False
    if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version          # glibc only: musl and macOS have other allocators
    except (OSError, AttributeError, TypeError):   # TypeError: Windows has no CDLL(None)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # The mmap threshold first: setting either one also stops glibc from moving the mmap threshold itself.
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
