"""Where local runs go: this process, K processes on the CPU, or every GPU of this machine, k runs per GPU.

    plan_placement(max_parallel=None, runs_per_gpu=None) -> Placement     bad input raises ConfigError
    placement.check_memory(runs)      k runs must fit in each GPU's memory (estimate: registry/run_memory.py)
    placement.describe()              one line for the command's output

No GPU (torch sees none): one run after another in this process, or --max-parallel K processes at a time.
G GPUs and k runs per GPU (--runs-per-gpu, default 1): up to G*k runs at once (--max-parallel caps the total),
each in its own process that sees exactly one GPU through CUDA_VISIBLE_DEVICES; a single slot (one GPU, one
run at a time) stays in this process. LocalExecutor (registry/launch.py) runs the processes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from simclr_core.validation import ConfigError

# Part of a GPU's memory that k runs may plan to fill: the rest absorbs the estimate's error and whatever
# else the GPU holds (a display, another user's process).
USABLE_FRACTION = 0.9


@dataclass(frozen=True)
class Gpu:
    device: str         # what a run pinned to this GPU gets as CUDA_VISIBLE_DEVICES
    name: str
    total_bytes: int

    def describe(self) -> str:
        return f"{self.device}: {self.name}, {self.total_bytes / (1 << 30):.1f} GiB"


def cuda_devices() -> list[tuple[str, int]]:
    """(name, total memory in bytes) of each CUDA device torch sees, in torch's order; [] without any."""
    import torch

    return [(props.name, props.total_memory)
            for props in map(torch.cuda.get_device_properties, range(torch.cuda.device_count()))]


def visible_gpus() -> list[Gpu]:
    """The GPUs this process may use. Under an inherited CUDA_VISIBLE_DEVICES (say "3,5") torch's device i is
    the i-th entry, so a run pinned to it must be given that entry ("5"), not i, which would name another GPU."""
    inherited = os.environ.get("CUDA_VISIBLE_DEVICES")
    entries = [entry.strip() for entry in inherited.split(",")] if inherited is not None else []
    return [Gpu(entries[i] if i < len(entries) else str(i), name, total)
            for i, (name, total) in enumerate(cuda_devices())]


@dataclass(frozen=True)
class Placement:
    """One slot per run that may execute at once: the CUDA_VISIBLE_DEVICES its process gets (None: inherited)."""
    slots: tuple[str | None, ...]
    gpus: tuple[Gpu, ...] = ()
    max_parallel: int | None = None

    @property
    def workers(self) -> int:
        return len(self.slots)

    @property
    def in_process(self) -> bool:
        return self.workers == 1

    def runs_on(self, gpu: Gpu) -> int:
        return self.slots.count(gpu.device)

    def describe(self) -> str:
        if not self.gpus:
            return "this process" if self.in_process else f"{self.workers} local processes"
        if self.in_process:     # train() takes torch's first device: this process's first visible GPU
            return f"this process, on GPU {self.gpus[0].describe()}"
        per_gpu = max(self.runs_on(gpu) for gpu in self.gpus)
        used = [gpu for gpu in self.gpus if self.runs_on(gpu)]
        cap = f" (--max-parallel {self.max_parallel})" if self.max_parallel is not None else ""
        return (f"up to {self.workers} local processes{cap}, each pinned to one GPU, at most {per_gpu} per GPU, "
                f"on {len(used)} GPU{'s' if len(used) > 1 else ''} ({_describe_gpus(used)})")

    def check_memory(self, runs: Sequence) -> None:
        """Raise ConfigError where more runs share a GPU than its memory holds (by registry/run_memory.py's
        estimate of the most demanding run). One run per GPU is never refused: the run itself finds out."""
        shared = [gpu for gpu in self.gpus if self.runs_on(gpu) > 1]
        if not shared or not runs:
            return
        from registry.run_memory import GIB, estimate_run_memory

        heaviest, estimate = max(((run, estimate_run_memory(run.config)) for run in runs),
                                 key=lambda pair: pair[1].total)
        for gpu in shared:
            k = self.runs_on(gpu)
            fit = int(USABLE_FRACTION * gpu.total_bytes // estimate.total)
            if k <= fit:
                continue
            advice = (f"at most {fit} fit: --runs-per-gpu {fit}" if fit >= 1 else
                      "not even one fits by this estimate: --runs-per-gpu 1 (the run then finds out for itself)")
            raise ConfigError(
                f"--runs-per-gpu {k}: {k} runs do not fit on GPU {gpu.device} ({gpu.name}, "
                f"{gpu.total_bytes / GIB:.1f} GiB; {USABLE_FRACTION:.0%} of it planned for runs): "
                f"{heaviest.run_id} needs about {estimate.describe()}; {advice}")


def _describe_gpus(gpus: Sequence[Gpu]) -> str:
    kinds = {(gpu.name, gpu.total_bytes) for gpu in gpus}
    if len(gpus) > 1 and len(kinds) == 1:
        return f"{len(gpus)} x {gpus[0].name}, {gpus[0].total_bytes / (1 << 30):.1f} GiB: " \
               f"CUDA_VISIBLE_DEVICES {', '.join(gpu.device for gpu in gpus)}"
    return "; ".join(gpu.describe() for gpu in gpus)


# Runs at once on one machine, each a process with its own data and model: far beyond any machine's cores or GPUs'
# memory, and it keeps a mistyped count (--max-parallel 10000000000) from allocating a slot per run.
MAX_RUNS_AT_ONCE = 4096


def _require_count(flag: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"{flag}={value!r} must be a positive integer (1, 2, ...)")
    if value is not None and value > MAX_RUNS_AT_ONCE:
        raise ConfigError(f"{flag}={value} is more runs at once than one machine holds: at most "
                          f"{MAX_RUNS_AT_ONCE:,} (each run is a process of its own)")


def plan_placement(max_parallel: int | None = None, runs_per_gpu: int | None = None) -> Placement:
    """Where runs go on this machine (see the module docstring); ConfigError for a bad count, or for
    runs_per_gpu where torch sees no GPU."""
    _require_count("--max-parallel", max_parallel)
    _require_count("--runs-per-gpu", runs_per_gpu)
    gpus = visible_gpus()
    if not gpus:
        if runs_per_gpu is not None:
            raise ConfigError(f"--runs-per-gpu {runs_per_gpu} applies to GPUs, and torch sees none on this machine "
                              f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}); on "
                              "CPUs, --max-parallel K runs K runs at once, each in its own process")
        return Placement((None,) * (max_parallel or 1))
    # Round-robin, so that a cap (--max-parallel, or fewer runs than slots) spreads runs over the GPUs first.
    slots = tuple(gpu.device for _ in range(runs_per_gpu or 1) for gpu in gpus)[:max_parallel]
    return Placement(slots, tuple(gpus), max_parallel)
