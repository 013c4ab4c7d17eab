"""Everything that touches torch.distributed: process facts, a differentiable all-gather, and global BatchNorm.

The paper trains with the batch split over many accelerators and needs two cross-device operations:
negatives from every device ("we aggregate ... negative examples from all devices" is what makes the 2N
batch global) and global BN: "we aggregate BN mean and variance over all devices during the training"
(Section 2, "Global BN"). Both live here so that no other module imports torch.distributed.

Gradient contract (shared by `all_gather_with_grad` and `GlobalBatchNorm`). Each process p computes a
loss L_p on its share of the batch, such that the single-process loss on the whole batch is the mean
L = (1/W) sum_p L_p. The backward of a gather sums the incoming gradients over the processes
(all-reduce) and keeps the local slice, so process p receives d(sum_q L_q)/d(its tensors) = W dL/d(its
tensors). DistributedDataParallel then averages parameter gradients over the W processes, which gives
exactly dL/d(parameters): the same step as one process on the whole batch.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from simclr_core.validation import ConfigError, require_range


def is_distributed() -> bool:
    """True when torch.distributed is initialised with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes (1 when torch.distributed is not initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 when torch.distributed is not initialised)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _group_size(group) -> int:
    return dist.get_world_size(group) if dist.is_available() and dist.is_initialized() else 1


# `all_gather_single` replaces the deprecated `all_gather_into_tensor` in recent torch releases.
_gather_into_tensor = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


class _AllGatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, group) -> Tensor:
        ctx.group = group
        ctx.size = _group_size(group)
        ctx.rank = dist.get_rank(group)
        x = x.contiguous()
        out = x.new_empty((ctx.size * x.shape[0], *x.shape[1:]))   # (P*n, ...)
        _gather_into_tensor(out, x, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        # Every process's loss may depend on every slice: sum their gradients, keep ours.
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        n = grad.shape[0] // ctx.size
        return grad[ctx.rank * n:(ctx.rank + 1) * n], None


def all_gather_with_grad(x: Tensor, group=None) -> Tensor:
    """Concatenate `x` (n, ...) from every process of `group` along dim 0, in rank order: (P*n, ...).

    Every process must pass the same shape. Unlike `accelerate.gather` (accelerate#76) the result is
    differentiable: backward all-reduces (sums) the gradient over the group and returns this process's
    slice (see the module docstring for why the sum makes DDP-averaged gradients exact). Without
    torch.distributed, or with a group of one process, `x` is returned unchanged.
    """
    if not (dist.is_available() and dist.is_initialized()) or _group_size(group) == 1:
        return x
    return _AllGatherWithGrad.apply(x, group)


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm over the batch of every process in `process_group` (the paper's global BN), on any device.

    "Global BN ... aggregate BN mean and variance over all devices during the training" (Section 2).
    torch's SyncBatchNorm accepts only CUDA tensors; this class does the same with torch.distributed
    collectives that also run on gloo/CPU. Inputs are (B, C) or (B, C, *spatial), so one class serves
    BatchNorm1d/2d/3d.

    In training mode with a group of more than one process, each process computes its per-channel
    count, mean and sum of squared deviations M2 in float32 (float64 stays float64; also under
    autocast), all-gathers them with gradient, and combines them with the parallel-variance formula
    (Chan et al.): mean = sum_p n_p m_p / n, M2 = sum_p [M2_p + n_p (m_p - mean)^2], var = M2 / n.
    Gathering (n, m, M2) rather than all-reducing sums of x and x^2 avoids the cancellation of
    E[x^2] - E[x]^2 when |mean| >> std; torch's SyncBatchNorm also gathers per-process statistics.
    The gather is differentiable, so autograd yields the gradients of BatchNorm on the concatenated
    batch (see the gradient contract in the module docstring). The output has the input's dtype.
    Running statistics follow nn.BatchNorm: momentum (or the cumulative average when momentum is None)
    and the unbiased variance M2 / (n - 1) of the global batch. Evaluation mode, a single process, or a
    group of one process use nn.BatchNorm's own computation.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, process_group=None,
                 device=None, dtype=None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype)
        self.process_group = process_group

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected an input of shape (B, C, ...), got {tuple(x.shape)}")

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        if not (self.training and _group_size(self.process_group) > 1):
            return super().forward(x)
        reduce_dims = [0, *range(2, x.dim())]
        channel_shape = (1, -1) + (1,) * (x.dim() - 2)
        xf = x.to(torch.promote_types(x.dtype, torch.float32))   # half precision -> float32; float64 stays
        count = xf.numel() // xf.shape[1]
        if count > 0:
            var_local, mean_local = torch.var_mean(xf, dim=reduce_dims, correction=0)   # (C,) each
        else:  # an empty local batch contributes nothing (its mean would be NaN)
            mean_local = var_local = xf.new_zeros(xf.shape[1])
        stats = torch.stack([torch.full_like(mean_local, count), mean_local, var_local * count])   # (3, C)
        gathered = all_gather_with_grad(stats, self.process_group).view(-1, 3, xf.shape[1])          # (P, 3, C)
        counts, means, m2s = gathered.unbind(1)                                        # (P, C) each
        total = counts.sum(0)                                                                        # (C,)
        mean = (counts * means).sum(0) / total
        var = (m2s.sum(0) + (counts * (means - mean).square()).sum(0)) / total
        self._update_running_stats(mean, var, total)

        scale = torch.rsqrt(var + self.eps)                                                          # (C,)
        if self.weight is not None:
            scale = scale * self.weight.to(xf.dtype)
        shift = -mean * scale
        if self.bias is not None:   # None for affine=False, or a scale-only BN (TF's center=False)
            shift = shift + self.bias.to(xf.dtype)
        y = torch.addcmul(shift.view(channel_shape), xf, scale.view(channel_shape))
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, var: Tensor, total: Tensor) -> None:
        if not self.track_running_stats or self.running_mean is None:
            return
        self.num_batches_tracked.add_(1)
        if self.momentum is None:   # cumulative moving average, as nn.BatchNorm
            factor = 1.0 / self.num_batches_tracked.to(mean.dtype)
        else:
            factor = torch.as_tensor(self.momentum, dtype=mean.dtype, device=mean.device)
        unbiased = var * total / (total - 1).clamp_min(1)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor.to(self.running_mean.dtype))
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor.to(self.running_var.dtype))


def _bn_process_group(group_size: int | None):
    """The group this process syncs BN over: all (None) or its block of `group_size` consecutive ranks.

    dist.new_group is collective: every process creates every group, in the same order.
    """
    size = world_size()
    if group_size is None or group_size == size:
        return None
    require_range("encoder.global_bn_group_size", group_size, low=1)
    if size % group_size:
        raise ConfigError(f"encoder.global_bn_group_size={group_size!r} must divide the number of processes "
                          f"({size}); valid values: {[k for k in range(1, size + 1) if size % k == 0]}")
    mine = None
    for start in range(0, size, group_size):
        ranks = list(range(start, start + group_size))
        group = dist.new_group(ranks)
        if rank() in ranks:
            mine = group
    return mine


def convert_to_global_bn(module: nn.Module, group_size: int | None = None) -> nn.Module:
    """Replace every BatchNorm1d/2d/3d (subclasses too) in `module` by a global one; return the new module.

    The kind is chosen from the device of the module's first parameter at conversion time, so convert
    after moving the model to its device and before wrapping it in DDP:
    CUDA -> torch.nn.SyncBatchNorm (NCCL's fused kernels), anything else -> GlobalBatchNorm (gloo/CPU).
    Parameters and running buffers are shared with the replaced layers (as SyncBatchNorm does), so
    weights, statistics and optimiser references carry over.

    group_size=k syncs over consecutive blocks of k processes (ranks 0..k-1, k..2k-1, ...); None syncs
    over all of them. It must divide the number of processes (ConfigError otherwise). With one process
    there is nothing to sync and group_size is ignored; the layers then compute plain BatchNorm.
    Every process must call this function (group creation is collective).
    """
    group = _bn_process_group(group_size) if is_distributed() else None
    first = next(module.parameters(), None)
    if first is not None and first.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module, process_group=group)
    return _swap_batchnorms(module, group)


def _swap_batchnorms(module: nn.Module, group) -> nn.Module:
    out = module
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
        out = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats, process_group=group)
        out.weight, out.bias = module.weight, module.bias   # either may be None
        out.running_mean = module.running_mean
        out.running_var = module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _swap_batchnorms(child, group))
    return out
