"""A scale planned for a GPU, dispatched locally on a machine without one: refused before anything is recorded.

Local runs (`run`, `sweep`; not --slurm, whose jobs train on the cluster's nodes) at a scale whose hardware is
"gpu" (experiments/scales.py: gpu, paper) would train on the CPU where torch sees no CUDA device: the gpu scale's
12 runs of temperature_norm, 0.62 GPU-hours planned, take hundreds of CPU-hours. They are refused in one line that
names the estimated CPU-hours (registry/estimate.py's CPU rates) beside the planned GPU-hours and the ways out,
unless ALLOW_FLAG says to train here anyway. Runs already done (or damaged: `run` does not train those without
--redo) are nothing to do, so a grid whose runs are all done is never refused.

    cpu_instead_of_gpu(scale, runs, store)   -> CpuInstead | None     None where nothing would train on a CPU
    gpu_here()                               whether torch sees a CUDA device (the one question, for tests to fake)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from registry.declare import Run
from registry.estimate import Total, format_device_hours, total
from registry.pretraining import finished_pretrainings
from registry.scales import SCALES, Scale
from registry.store import RunStore

ALLOW_FLAG = "--allow-cpu"
ALLOW_HELP = ("at a scale planned for a GPU ({gpu_scales}), train locally on this machine's CPU where it has no "
              "GPU; without it such runs are refused, naming their estimated CPU-hours (no effect where a GPU is "
              "seen, or at a scale planned for a CPU)")


def gpu_here() -> bool:
    """Whether torch sees a CUDA device on this machine (the runs of this process would train on it)."""
    from registry.placement import visible_gpus

    return bool(visible_gpus())


def gpu_scale_names() -> str:
    return ", ".join(name for name, scale in SCALES.items() if scale.hardware == "gpu") or "none declared"


def allow_help() -> str:
    return ALLOW_HELP.format(gpu_scales=gpu_scale_names())


def still_to_do(runs: Sequence[Run], store: RunStore, redo: bool = False) -> list[Run]:
    """The runs `run` trains or submits: not done and not damaged (those only --redo trains), or all with it."""
    return [run for run in runs if redo or not (store.is_done(run.run_id) or store.problem(run.run_id))]


def hours_on(runs: Sequence[Run], store: RunStore, hardware: str) -> Total:
    """Estimated hours of `runs` on one device of `hardware`, each pretraining paid once: not at all where a finished
    run of the store other than these holds it (the run then only evaluates), as `run --dry-run`'s plan counts it."""
    finished = finished_pretrainings(store) if runs else {}
    ids = {run.run_id for run in runs}
    return total((run.config for run in runs), hardware,
                 paid=[key for key, holder in finished.items() if holder not in ids])


def added(one: Total, other: Total) -> Total:
    return Total(one.runs + other.runs, one.hours + other.hours, one.rates + other.rates)


def scaled(total: Total, factor: float) -> Total:
    """`total` for `factor` times as many runs alike (a sweep's trials still to ask, from those of its range's ends)."""
    return Total(round(total.runs * factor), total.hours * factor, total.rates)


@dataclass(frozen=True)
class CpuInstead:
    """Runs of a GPU scale that would train on this machine's CPU: how many, and their estimated hours on each."""
    scale: Scale
    what: str            # "the 12 run(s) still to do", "up to 4 TPE trial(s) still to ask"
    cpu: Total
    gpu: Total

    def _no_gpu(self) -> str:
        hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
        return "this machine has none (torch sees no CUDA device" + (
            f"; CUDA_VISIBLE_DEVICES={hidden!r}" if hidden is not None else "") + ")"

    def estimate_text(self) -> str:
        """"about 310 CPU-hours by estimate (rate measured on ...), against 0.62 GPU-hours planned"."""
        return (f"about {format_device_hours(self.cpu.hours, 'cpu')} by estimate ({self.cpu.rate_text()}, "
                f"FLOPs-scaled: registry/estimate.py), against {format_device_hours(self.gpu.hours, 'gpu')} planned")

    def ways_out(self) -> str:
        cpu_scales = [name for name, scale in SCALES.items() if scale.hardware == "cpu"]
        choices = " or ".join(f"--scale {name}" for name in cpu_scales)
        ways = ([f"a scale planned for a CPU ({choices})"] if cpu_scales else []) + [
            "--slurm to train on a cluster's GPUs", f"{ALLOW_FLAG} to train on this CPU anyway"]
        return ", ".join(ways[:-1]) + f", or {ways[-1]}"

    def refusal(self) -> str:
        return (f"scale {self.scale.name!r} is planned for a GPU and {self._no_gpu()}: {self.what} would train on "
                f"this CPU, {self.estimate_text()}; choose {self.ways_out()} (nothing was recorded)")

    def allowed(self) -> str:
        """The line printed before the runs start under ALLOW_FLAG."""
        return (f"{ALLOW_FLAG}: scale {self.scale.name} is planned for a GPU and {self._no_gpu()}; training "
                f"{self.what} on this CPU, {self.estimate_text()}")

    def dry_run_line(self, allowed: bool) -> str:
        if allowed:
            return f"  with {ALLOW_FLAG}, `run` trains {self.what} on this CPU: {self.estimate_text()}"
        return (f"  `run` would refuse this here: scale {self.scale.name} is planned for a GPU and {self._no_gpu()}, "
                f"so {self.what} would train on this CPU, {self.estimate_text()}; choose {self.ways_out()}")


def cpu_instead_of_gpu(scale: Scale, runs: Sequence[Run], store: RunStore, redo: bool = False) -> CpuInstead | None:
    """Where `scale` is planned for a GPU, this machine has none, and some of `runs` are still to do (still_to_do):
    what they would cost on this CPU; else None."""
    if scale.hardware != "gpu" or gpu_here():
        return None
    todo = still_to_do(runs, store, redo)
    if not todo:
        return None
    return CpuInstead(scale, f"the {len(todo)} run(s) still to do", hours_on(todo, store, "cpu"),
                      hours_on(todo, store, "gpu"))
