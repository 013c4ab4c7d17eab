"""The fused C++ kernels of native.cpp, compiled for this CPU on first use and cached by torch.

At 224 px the eager pipeline makes one pass over a chunk per operation (about 60 per view); native.cpp does
crop + resize + flip + uint8 -> float in one pass, the whole colour distortion of an image while it sits in
the L2 cache, and the blur without padded copies or row gathers (benchmarks/RESULTS.md has the timings).
They need a C++ compiler (g++) and ninja at the first call; without them, or with SIMCLR_NATIVE_AUGMENT=0,
``kernels()`` is None and the pipeline runs its eager PyTorch ops, which give the same views (tested).
"""
from __future__ import annotations

import functools
import hashlib
import os
import platform
import sysconfig
import threading
import warnings
from pathlib import Path

SOURCE = Path(__file__).with_name("native.cpp")
SWITCH = "SIMCLR_NATIVE_AUGMENT"


_lock = threading.Lock()


def kernels():
    """The compiled module (resized_crop_uint8, blur_rows_, color_, normalize_into), or None where it cannot
    be used. Thread-safe: the pipeline's worker threads may be the first to ask."""
    with _lock:
        return _load()


@functools.lru_cache(maxsize=None)
def _load():
    setting = os.environ.get(SWITCH, "1")
    if setting not in ("0", "1"):
        raise ValueError(f"{SWITCH} must be 0 (eager PyTorch ops) or 1 (native kernels), got {setting!r}")
    if setting == "0":
        return None
    try:
        from torch.utils.cpp_extension import load
        _put_ninja_on_path()
        return load(name=_build_name(), sources=[str(SOURCE)],
                    extra_cflags=["-O3", "-march=native", "-fopenmp-simd", "-fno-math-errno"])
    except Exception as error:           # no compiler or ninja here: the eager ops give the same views
        warnings.warn(f"simclr_core: the native CPU augmentation kernels did not build ({error}); using eager "
                      f"PyTorch ops, ~2.4x slower at 224 px. Set {SWITCH}=0 to skip the build.", stacklevel=2)
        return None


def _build_name() -> str:
    """-march=native code runs only on CPUs with this one's instruction sets: on a cluster whose nodes share
    a home directory (torch caches builds there), each kind of CPU gets a build of its own."""
    flags = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags += line
                break
    except OSError:
        pass
    source = SOURCE.read_bytes()
    return "simclr_augment_" + hashlib.sha256(flags.encode() + source).hexdigest()[:12]


def _put_ninja_on_path() -> None:
    """torch runs `ninja` from PATH; the pip-installed one sits beside this interpreter's scripts."""
    scripts = sysconfig.get_path("scripts")
    path = os.environ.get("PATH", "")
    if scripts and scripts not in path.split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join(filter(None, (path, scripts)))


kernels.cache_clear = _load.cache_clear       # forget the module (or its absence), e.g. after changing SWITCH


def _new_lock_after_fork() -> None:
    global _lock                      # a thread of the parent may have held it when the child was forked
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_after_fork)
