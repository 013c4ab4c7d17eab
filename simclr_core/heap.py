"""Freed CPU tensors stay in the process's heap, so that the next training step reuses pages already mapped.

glibc serves every block above its mmap threshold (128 KiB at the start, raised by frees to at most 32 MiB)
with a fresh mmap and gives it back to the kernel on free; the next block of that size then faults in and
zeroes every page again. A training step allocates and frees its activations (16 MiB each in the first
stage of ResNet-18 x0.25 at batch 256) every step: measured on the 2-core reference CPU, 7,100-8,500 page
faults and 63-96 ms of system time per step, against 160-440 faults and 13-34 ms with this setting, and
steps of 0.42 s instead of 0.48 s (benchmarks/RESULTS.md). The setting: glibc's mmap threshold raised to
1 GiB (blocks come from the heap) and its trim threshold to 2 GiB (the heap's top is not given back). The
cost is that the process keeps its peak memory mapped until it exits, which a training process reaches every
step anyway.

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
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # The mmap threshold first: setting either one also stops glibc from moving the mmap threshold itself.
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
