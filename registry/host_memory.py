"""How much memory this machine can still give a run that trains on its CPU, and the check that refuses runs
which cannot fit before any of them starts.

    available_memory() -> HostMemory | None     None where Linux's /proc/meminfo is not there to read
    host_fit(runs, parallel) -> HostFit | None  the peak of `parallel` runs at once against it (`--dry-run`)
    check_host_memory(runs, parallel)           ConfigError when the runs cannot fit, naming what would

A run out of memory on a GPU fails with an error of its own; on a CPU Linux's out-of-memory killer ends the
whole process without a word (SIGKILL: the command dies, the run is left "running"). So runs on the CPU are
checked first, against registry/run_memory.py's estimate of their peak.

Available: the kernel's MemAvailable (free memory plus the page cache it can drop) plus free swap, lowered to
the headroom of every memory cgroup above this process (a container's or a SLURM job's limit: limit minus
the memory in use, less the inactive file cache the kernel reclaims before it kills), cgroup v1 or v2.
Swap a cgroup allows beyond its memory limit is not counted (that only makes the check stricter).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from registry.scales import SCALES
from simclr_core.cgroups import cgroup_folders, read_setting
from simclr_core.validation import ConfigError

GIB = float(1 << 30)
UNLIMITED = 1 << 60     # cgroup v1 writes "no limit" as a number near 2**63


@dataclass(frozen=True)
class HostMemory:
    """Bytes a new process can use, the most the bound allows in all (the cgroup's limit, or memory and swap),
    and in words where that bound comes from."""
    available: int
    ceiling: int
    source: str

    def describe(self) -> str:
        return f"{self.available / GIB:.1f} GiB available ({self.source})"


def available_memory(proc: Path = Path("/proc"), cgroup_root: Path = Path("/sys/fs/cgroup")) -> HostMemory | None:
    """What this process may still allocate (see the module docstring); None without /proc/meminfo."""
    info = _meminfo(proc / "meminfo")
    if info is None or "MemAvailable" not in info:
        return None
    swap = info.get("SwapFree", 0)
    best = HostMemory(info["MemAvailable"] + swap, info.get("MemTotal", info["MemAvailable"]) + swap,
                      f"memory {info['MemAvailable'] / GIB:.1f} GiB" + (f" + swap {swap / GIB:.1f} GiB" if swap else "")
                      + " by /proc/meminfo")
    for folder in cgroup_folders("memory", proc, cgroup_root):
        limit = _cgroup_headroom(folder)
        if limit is not None and limit[0] < best.available:
            headroom, limit_bytes = limit
            best = HostMemory(headroom, limit_bytes, f"the memory cgroup {folder} allows {limit_bytes / GIB:.1f} "
                                                     f"GiB, {(limit_bytes - headroom) / GIB:.1f} GiB of it in use")
    return best


def check_host_memory(runs: Sequence, parallel: int = 1, available: HostMemory | None = None) -> None:
    """ConfigError where `parallel` of `runs` at once (the most demanding ones) would need more memory than is
    available; nothing is refused where the machine does not say what it has."""
    fit = host_fit(runs, parallel, available)
    if fit is not None and fit.problem():
        raise ConfigError(fit.problem())


@dataclass(frozen=True)
class HostFit:
    """The peak memory of the runs that would train at once, against what this machine has."""
    need: int
    at_once: int
    parallel: int
    heaviest: object           # the most demanding run's MemoryEstimate
    heaviest_run: object       # ... and the run
    fitting: int               # how many of the heaviest fit at once
    available: HostMemory

    def summary(self) -> str:
        verdict = "fits" if self.need <= self.available.available else "does not fit: `run` refuses it"
        return (f"memory: about {self.need / GIB:.1f} GiB at the peak for {self.at_once} run(s) at once "
                f"(registry/run_memory.py); this machine has {self.available.describe()}: {verdict}")

    def problem(self) -> str | None:
        if self.need <= self.available.available:
            return None
        run = self.heaviest_run
        if self.at_once > 1 and self.fitting >= 1:
            advice = f"at most {self.fitting} at once fit: --max-parallel {self.fitting}"
        else:
            advice = (f"lower its batch_size (now {run.config.batch_size}; the activations grow with it) or "
                      "free memory, or train it on a machine with more")
        if SCALES.get(run.scale) is not None and SCALES[run.scale].hardware == "gpu":
            advice += f" (scale {run.scale} is planned for GPUs: a machine with one, or --slurm)"
        together = (f"{self.at_once} runs at once (--max-parallel {self.parallel}) need about "
                    f"{self.need / GIB:.1f} GiB; the largest, {run.run_id}, about {self.heaviest.describe()}"
                    if self.at_once > 1 else f"{run.run_id} needs about {self.heaviest.describe()}")
        return (f"not enough memory to train on this CPU: {together}, and this machine has "
                f"{self.available.describe()}; {advice}.\nNo run was started (an out-of-memory kill would end "
                "the command without a word).")


def host_fit(runs: Sequence, parallel: int = 1, available: HostMemory | None = None) -> HostFit | None:
    """How `parallel` of `runs` at once (the most demanding ones) fit in this machine's memory; None without
    runs or where the machine does not say what it has. parallel=1 means this process trains them: what it
    holds now is part of the estimate's process baseline, so it counts as available (up to the bound)."""
    available = available or available_memory()
    if not runs or available is None:
        return None
    if parallel == 1:
        own = _meminfo(Path("/proc/self/status")) or {}
        if own.get("VmRSS"):
            available = HostMemory(min(available.ceiling, available.available + own["VmRSS"]), available.ceiling,
                                   f"{available.source}, + {own['VmRSS'] / GIB:.1f} GiB this process holds")
    from registry.run_memory import estimate_run_memory

    estimates = sorted(((estimate_run_memory(run.config, device="cpu"), run) for run in runs),
                       key=lambda pair: pair[0].total, reverse=True)
    at_once = min(parallel, len(estimates))
    running = [sum(e.total for e, _ in estimates[:i]) for i in range(1, at_once + 1)]
    return HostFit(need=running[-1], at_once=at_once, parallel=parallel, heaviest=estimates[0][0],
                   heaviest_run=estimates[0][1], fitting=sum(total <= available.available for total in running),
                   available=available)


def _meminfo(path: Path) -> dict[str, int] | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        words = rest.split()
        if words and words[0].isdigit():
            values[key] = int(words[0]) * (1024 if words[1:] == ["kB"] else 1)
    return values


def _cgroup_headroom(folder: Path) -> tuple[int, int] | None:
    """(bytes left under the folder's memory limit, the limit), or None where it sets none."""
    limit = _read_number(folder / "memory.max") or _read_number(folder / "memory.limit_in_bytes")
    if limit is None or limit >= UNLIMITED:
        return None
    used = _read_number(folder / "memory.current") or _read_number(folder / "memory.usage_in_bytes") or 0
    stat = _meminfo_like(folder / "memory.stat")
    reclaimable = stat.get("inactive_file", stat.get("total_inactive_file", 0))
    return max(0, limit - max(0, used - reclaimable)), limit


def _read_number(path: Path) -> int | None:
    text = read_setting(path)
    return int(text) if text.isdigit() else None     # cgroup v2 writes "max" for no limit


def _meminfo_like(path: Path) -> dict[str, int]:
    values = {}
    for line in read_setting(path).splitlines():
        words = line.split()
        if len(words) == 2 and words[1].isdigit():
            values[words[0]] = int(words[1])
    return values
