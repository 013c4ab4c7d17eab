"""`batch_norm_act(bn, x, residual)` = relu(bn(x) + residual): the ResNet's BatchNorm, residual add and ReLU.

On CPU tensors in channels_last, in training, it runs native_bn.cpp's fused kernels: one read of x for the
statistics and one read + write for the output, and a backward of two passes, where eager PyTorch runs
BatchNorm, add and ReLU as separate passes (and its channels_last BatchNorm of a 16-channel layer, the first
stage of the width x0.25 ResNet-18 that CPU-scale runs use, takes about 3x what its memory traffic needs).
Per layer 1.2-1.6x faster, per training step 2-7% (benchmarks/RESULTS.md). Everywhere else (GPUs, eval
mode, contiguous tensors, global BatchNorm, float64, torch.compile tracing, no compiler, SIMCLR_NATIVE_BN=0)
it is the eager module call, unchanged.

The fused path is nn.BatchNorm2d's training forward: batch statistics with the biased variance for the
output, running statistics updated with the unbiased one (momentum, or the cumulative average when momentum
is None), num_batches_tracked counted. tests/simclr_core/test_fused_bn.py checks it against the module in
float64.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from simclr_core.native_build import LazyExtension, build_name, compile_extension

SOURCE = Path(__file__).with_name("native_bn.cpp")
SWITCH = "SIMCLR_NATIVE_BN"
_DTYPES = (torch.float32, torch.bfloat16)

kernels = LazyExtension(SWITCH, lambda: compile_extension(build_name("simclr_bn", SOURCE), SOURCE, openmp=True),
                        fallback="eager PyTorch BatchNorm + ReLU, 2-7% slower training steps on CPUs")


def batch_norm_act(bn: nn.BatchNorm2d, x: Tensor, residual: Tensor | None = None, relu: bool = True) -> Tensor:
    """relu(bn(x) + residual) (without `relu`: bn(x) + residual; without `residual`: relu(bn(x)))."""
    if _fusable(bn, x, residual):
        compiled = kernels()
        if compiled is not None:
            return _fused(compiled, bn, x, residual, relu)
    out = bn(x)
    if residual is not None:
        out = out + residual
    return torch.relu_(out) if relu else out


def _fusable(bn: nn.BatchNorm2d, x: Tensor, residual: Tensor | None) -> bool:
    # An exact type: subclasses (global BatchNorm, SyncBatchNorm) compute their statistics differently.
    return (type(bn) is nn.BatchNorm2d and bn.training and bn.affine and bn.track_running_stats
            and bn.running_mean is not None and x.device.type == "cpu" and x.dtype in _DTYPES
            and x.dim() == 4 and x.numel() > x.shape[1] and x.is_contiguous(memory_format=torch.channels_last)
            and bn.weight.dtype == torch.float32 and bn.running_mean.dtype == torch.float32
            and (residual is None or (residual.dtype == x.dtype and residual.shape == x.shape
                                      and residual.is_contiguous(memory_format=torch.channels_last)))
            and not torch.compiler.is_compiling())


def _fused(compiled, bn: nn.BatchNorm2d, x: Tensor, residual: Tensor | None, relu: bool) -> Tensor:
    y, mean, var = _BatchNormAct.apply(x, bn.weight, bn.bias, residual, bn.eps, relu, compiled)
    with torch.no_grad():
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
        count = x.numel() // x.shape[1]
        bn.running_mean.lerp_(mean, factor)
        bn.running_var.lerp_(var * (count / (count - 1)), factor)
    return y


class _BatchNormAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, residual, eps, relu, compiled):
        y, mean, var, invstd = compiled.bn_act_forward(x, weight.detach(), bias.detach(), residual, eps, relu)
        ctx.save_for_backward(x, y if relu else None, weight, mean, invstd)
        ctx.relu, ctx.has_residual, ctx.compiled = relu, residual is not None, compiled
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(ctx, grad_y, _grad_mean, _grad_var):
        x, y, weight, mean, invstd = ctx.saved_tensors
        want_residual = ctx.has_residual and ctx.needs_input_grad[3]
        grad_y = grad_y.contiguous(memory_format=torch.channels_last)
        grad_x, grad_weight, grad_bias, grad_residual = ctx.compiled.bn_act_backward(
            grad_y, x, y if ctx.relu else x, weight.detach(), mean, invstd, ctx.relu, want_residual)
        return (grad_x if ctx.needs_input_grad[0] else None,
                grad_weight if ctx.needs_input_grad[1] else None,
                grad_bias if ctx.needs_input_grad[2] else None,
                grad_residual if want_residual else None, None, None, None)
