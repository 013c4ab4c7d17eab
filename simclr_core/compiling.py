"""torch.compile of the pretraining model: what `compile="auto"` means on a device, and the one place it is applied.

Speed only: the compiled model computes what the eager one does, within the precision's rounding
(tests/simclr_core/test_compiling.py), so `compile` is not part of a run's id. Only the model's forward (encoder
and head, and with it the backward) is compiled; the loss, its gathered negatives and the optimiser stay eager:
their collectives and custom autograd functions would split the graph, and they are a small part of a step.

Modes are torch.compile's: "default"; "reduce-overhead" adds CUDA graphs (the views tensor of train() is
allocated once, so the graph's input keeps its address); "max-autotune" also searches kernel configurations
(minutes of compilation). "auto" is "default" on CUDA, where torch.compile is built to pay (not yet measured
here: scripts/gpu_check.sh does), and "off" on CPUs: on the 2-core reference CPU the compiled step ran 0.93x
the eager one, whose fused C++ kernels inductor's code replaces (benchmarks/RESULTS.md), and compiling costs
about half a minute of a run that lasts a few.
"""
from __future__ import annotations

import torch
from torch import nn

COMPILE_MODES: tuple[str, ...] = ("auto", "off", "default", "reduce-overhead", "max-autotune")


def resolve_compile(mode: str, device: torch.device) -> str:
    """"off" or the torch.compile mode that `mode` ("auto" or one of COMPILE_MODES) means on `device`."""
    if mode != "auto":
        return mode
    return "default" if device.type == "cuda" else "off"


def compile_model(model: nn.Module, mode: str) -> nn.Module:
    """Compile `model`'s forward in place (its state_dict keys stay as they are) unless `mode` is "off".

    Compilation happens at the first call, which then takes longer (tens of seconds to minutes); later calls
    with the same shapes reuse the compiled code. train() passes the DistributedDataParallel wrapper itself where
    there is one, the arrangement torch documents for DDP under torch.compile.
    """
    if mode == "off":
        return model
    if isinstance(model, nn.parallel.DistributedDataParallel) and _torch_version() < (2, 6):
        # torch < 2.6's DDPOptimizer (the graph split into gradient buckets) refuses a graph that holds a
        # higher-order op, which is how dynamo traces a custom autograd function such as global BatchNorm's
        # all-gather (distributed.py): one bucket instead (no overlap of the gradient all-reduce with the backward,
        # the fallback torch's error message recommends). Found with torch 2.4.1; 2.6 no longer refuses.
        import torch._dynamo

        torch._dynamo.config.optimize_ddp = False
    model.compile(mode=mode, dynamic=False)
    return model


def _torch_version() -> tuple[int, int]:
    major, minor = torch.__version__.split(".")[:2]
    return int(major), int(minor)
