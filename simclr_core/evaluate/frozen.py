"""Proof that an evaluation left the encoder untouched: a bit-exact snapshot of its state, compared after.

Linear evaluation is only meaningful on a frozen encoder. A re-implementation that lets BatchNorm
running statistics (or weights) move while the "linear" head trains measures a partly fine-tuned
network and reports inflated numbers; so the protocols snapshot every parameter and buffer
(running_mean, running_var, num_batches_tracked, and any custom buffer) before they start and raise
if a single bit differs afterwards.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def _bits(tensor: Tensor) -> Tensor:
    # Compare raw bytes, not values: NaN != NaN and -0.0 == 0.0 would fool torch.equal on floats.
    return tensor.detach().reshape(-1).contiguous().view(torch.uint8)


def snapshot_state(module: nn.Module) -> dict[str, Tensor]:
    """A copy (same device) of every parameter and buffer, persistent or not, keyed by name."""
    state = {f"param:{name}": p.detach().clone() for name, p in module.named_parameters()}
    state.update({f"buffer:{name}": b.detach().clone() for name, b in module.named_buffers()})
    return state


def changed_tensors(module: nn.Module, snapshot: dict[str, Tensor]) -> list[str]:
    """Names of the parameters/buffers that differ (in bits, shape, dtype or presence) from ``snapshot``."""
    now = {f"param:{name}": p for name, p in module.named_parameters()}
    now.update({f"buffer:{name}": b for name, b in module.named_buffers()})
    changed = sorted(set(now) ^ set(snapshot))
    for name in sorted(set(now) & set(snapshot)):
        before, after = snapshot[name], now[name]
        if (before.shape != after.shape or before.dtype != after.dtype
                or not _bits(before).equal(_bits(after).to(before.device))):
            changed.append(name)
    return changed


def require_unchanged(module: nn.Module, snapshot: dict[str, Tensor], *, during: str,
                      what: str = "the encoder") -> None:
    """Raise RuntimeError naming every tensor of ``module`` (``what``, in the message) changed since ``snapshot``."""
    changed = changed_tensors(module, snapshot)
    if changed:
        shown = ", ".join(changed[:10]) + (f", ... ({len(changed)} in all)" if len(changed) > 10 else "")
        raise RuntimeError(f"{what} changed during {during} although it must stay frozen: {shown}")
