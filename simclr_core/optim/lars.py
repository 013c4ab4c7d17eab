"""LARS (You et al. 2017, arXiv:1708.03888) exactly as the official SimCLR code runs it.

Paper, Sec. 2.2: "Training with large batch size may be unstable when using standard SGD/Momentum with
linear learning rate scaling. To stabilize the training, we use the LARS optimizer for all batch sizes."

Reference: google-research/simclr `lars_optimizer.py` with its defaults (`classic_momentum=True`,
`use_nesterov=False`, `eeta=1e-3`). Per parameter w with gradient g, for the adapted group:

    g          <- g + weight_decay * w                       (coupled L2, added to the gradient)
    trust      =  trust_coefficient * ||w|| / (||g|| + eps)  (1 where ||w|| = 0 or ||g|| = 0)
    v          <- momentum * v + lr * trust * g              (lr sits INSIDE the momentum buffer)
    w          <- w - v

and for the excluded group (biases, BatchNorm) the same with no weight decay and trust = 1, i.e. plain
momentum SGD. Because lr multiplies the gradient before it enters the buffer, a change of lr takes effect
gradually through the momentum, unlike torch.optim.SGD (v <- m v + g; w <- w - lr v); the two agree only
while lr is constant. `eps` is not in the official code (eps=0 reproduces it).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, Iterable

import torch
from torch import Tensor

from simclr_core.validation import require_range


class LARS(torch.optim.Optimizer):
    """Layer-wise adaptive rate scaling with classic momentum; groups with ``lars_exclude=True`` skip it.

    ``weight_decay`` is the coupled L2 coefficient (added to the gradient, as in the official code), not
    decoupled AdamW decay. Build the groups with `param_groups(model, weight_decay)`. A group flagged
    ``lars_exclude`` gets neither weight decay (whatever its ``weight_decay`` says) nor the trust ratio.
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 1e-3, eps: float = 0.0):
        require_range("optim.lr", lr, low=0)
        require_range("optim.momentum", momentum, low=0, high=1, high_inclusive=False)
        require_range("optim.weight_decay", weight_decay, low=0)
        require_range("optim.trust_coefficient", trust_coefficient, low=0, low_inclusive=False)
        require_range("optim.eps", eps, low=0)
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                        trust_coefficient=trust_coefficient, eps=eps, lars_exclude=False)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            # One batch of foreach kernels per (device, dtype), as torch.optim does.
            buckets: dict[tuple, tuple[list[Tensor], list[Tensor], list[Tensor]]] = defaultdict(
                lambda: ([], [], []))
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("LARS does not support sparse gradients")
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                params, grads, buffers = buckets[(p.device, p.dtype)]
                params.append(p)
                grads.append(p.grad)
                buffers.append(state["momentum_buffer"])
            for params, grads, buffers in buckets.values():
                _lars_update(params, grads, buffers, lr=group["lr"], momentum=group["momentum"],
                             weight_decay=group["weight_decay"], trust_coefficient=group["trust_coefficient"],
                             eps=group["eps"], adapt=not group["lars_exclude"])
        return loss


def _lars_update(params: list[Tensor], grads: list[Tensor], buffers: list[Tensor], *, lr: float,
                 momentum: float, weight_decay: float, trust_coefficient: float, eps: float,
                 adapt: bool) -> None:
    """In-place update of one same-device, same-dtype bucket; never reads a value back to the host."""
    torch._foreach_mul_(buffers, momentum)
    if not adapt:
        torch._foreach_add_(buffers, grads, alpha=lr)
        torch._foreach_sub_(params, buffers)
        return
    if weight_decay:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)  # new tensors: p.grad stays untouched
    w_norm = torch.stack(torch._foreach_norm(params))  # (n,)
    g_norm = torch.stack(torch._foreach_norm(grads))  # (n,)
    trust = torch.where((w_norm > 0) & (g_norm > 0), trust_coefficient * w_norm / (g_norm + eps),
                        torch.ones_like(w_norm))  # (n,)
    scaled_lr = list((lr * trust).unbind())  # n 0-d tensors, one per parameter
    if weight_decay:  # grads are our own copies: scale them in place
        torch._foreach_mul_(grads, scaled_lr)
    else:
        grads = torch._foreach_mul(grads, scaled_lr)
    torch._foreach_add_(buffers, grads)
    torch._foreach_sub_(params, buffers)
