"""Large CPU tensors on transparent huge pages, requested before torch allocates anything.

Two views of a batch of 256 images at 224 px are a 308 MB float32 tensor, and every eager augmentation
kernel returns a fresh one. glibc serves blocks that large with a new mmap, so each output first faults in
~75,000 4 KiB pages, which the kernel zeroes one by one: measured on the 2-core reference CPU, 5.4 million
page faults and about 40% of the CPU time of the 224 px augmentation (benchmarks/RESULTS.md). PyTorch's CPU
allocator asks for huge pages (madvise, 2 MiB) for allocations of 2 MiB and more when the environment
variable below is "1" when it first allocates; that cuts the faults 26-fold and the 224 px augmentation's
wall time by ~40%. At 32 px (tensors of a few MB) it changes nothing measurable.

torch reads the variable once, at its first allocation, so it must be set before `import torch`:
`simclr_core` and `registry` call `request_huge_pages()` first thing in their package `__init__`, which
covers `python -m simclr_core.demo`, `python -m registry ...` and the SLURM jobs they submit. An explicit
THP_MEM_ALLOC_ENABLE=0 in the environment is respected. Machines whose kernel has THP disabled ("never")
simply get ordinary pages.
"""
from __future__ import annotations

import os

ENV_VAR = "THP_MEM_ALLOC_ENABLE"


def request_huge_pages() -> bool:
    """Set THP_MEM_ALLOC_ENABLE=1 unless the environment already says; True if huge pages are requested."""
    return os.environ.setdefault(ENV_VAR, "1") == "1"
