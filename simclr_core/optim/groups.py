"""Split a model's parameters into the group LARS adapts and decays, and the group it leaves alone.

Paper, Appendix B.1: "we use LARS optimizer ... with weight decay of 1e-6" and, as in the official code
(`exclude_from_weight_decay=['batch_normalization', 'bias', ...]`, which LARS also uses as its
`exclude_from_layer_adaptation` list), biases and BatchNorm parameters get neither weight decay nor the
trust ratio. The official code matches on variable names; we match on what a parameter is (a 1-D tensor,
or any parameter owned by a normalisation layer), so renaming a module cannot silently change the groups.
"""
from __future__ import annotations

from torch import nn

# Every normalisation layer torch ships (BatchNorm*/SyncBatchNorm/InstanceNorm* share _NormBase). A custom
# norm layer that subclasses none of these still has only 1-D parameters, which the 1-D rule catches.
NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm, nn.RMSNorm,
)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two optimiser param groups: ``adapted`` (conv/linear weights) and ``excluded`` (biases, norm layers).

    The adapted group carries ``weight_decay`` and ``lars_exclude=False``; the excluded group carries
    ``weight_decay=0.0`` and ``lars_exclude=True`` (LARS then applies plain momentum SGD to it). Every
    parameter of ``model`` appears exactly once (shared parameters are deduplicated, frozen ones are kept:
    optimisers skip parameters whose ``grad`` is None). Both groups are always present, possibly empty,
    so ``optimizer.param_groups[0]`` is always the adapted one.
    """
    seen: set[int] = set()
    adapted: list[nn.Parameter] = []
    excluded: list[nn.Parameter] = []
    for module in model.modules():
        in_norm_layer = isinstance(module, NORM_LAYERS)
        for p in module.parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            (excluded if in_norm_layer or p.ndim <= 1 else adapted).append(p)
    return [
        {"params": adapted, "weight_decay": weight_decay, "lars_exclude": False, "name": "adapted"},
        {"params": excluded, "weight_decay": 0.0, "lars_exclude": True, "name": "excluded"},
    ]
