"""The fused C++ kernels of native.cpp, compiled for this CPU on first use and cached by torch.

At 224 px the eager pipeline makes one pass over a chunk per operation (about 60 per view); native.cpp does
crop + resize + flip + uint8 -> float in one pass, the whole colour distortion of an image while it sits in
the L2 cache, and the blur without padded copies or row gathers (benchmarks/RESULTS.md has the timings).
They need a C++ compiler (g++) and ninja at the first call; without them, or with SIMCLR_NATIVE_AUGMENT=0,
``kernels()`` is None and the pipeline runs its eager PyTorch ops, which give the same views (tested).
"""
from __future__ import annotations

from pathlib import Path

from simclr_core.native_build import LazyExtension, build_name, compile_extension

SOURCE = Path(__file__).with_name("native.cpp")
SWITCH = "SIMCLR_NATIVE_AUGMENT"


def _build_name() -> str:
    return build_name("simclr_augment", SOURCE)


# The compiled module (resized_crop_uint8, blur_rows_, color_, normalize_into), or None where it cannot be
# used. Its kernels are single-threaded: the pipeline runs chunks side by side on its own worker threads.
kernels = LazyExtension(SWITCH, lambda: compile_extension(_build_name(), SOURCE, openmp=False),
                        fallback="eager PyTorch ops for the augmentation, ~4x slower at 224 px")
