"""What a benchmark ran on: the machine, how busy it was, and the library versions, as printable lines.

A ratio measured on a machine shared with other jobs is only as good as that sharing allows, so every
table is printed between two load-average readings.
"""
from __future__ import annotations

import os
import platform
from importlib import metadata

import torch

LIBRARIES = ("torch", "torchvision", "lightly", "numpy", "pillow", "accelerate")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions() -> str:
    found = []
    for name in LIBRARIES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return f"python {platform.python_version()}, " + ", ".join(found)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} logical CPUs"


def describe(device: torch.device) -> list[str]:
    """Lines naming the machine, the device measured on and the library versions."""
    from simclr_core.precision import cpu_supports_bf16

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lines = [f"machine: {platform.node()}, {cpu_model()}, {usable} usable of {os.cpu_count()} logical CPUs, "
             f"torch threads {torch.get_num_threads()}, native CPU bf16: {cpu_supports_bf16()}"]
    if device.type == "cuda":
        lines.append(f"device: {torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})")
    else:
        lines.append("device: cpu")
    lines.append("versions: " + library_versions())
    return lines
