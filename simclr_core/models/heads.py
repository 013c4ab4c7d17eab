"""The projection head g(.) that maps representations h to the space where the contrastive loss is applied.

Paper, Section 2.1: "we use a MLP with one hidden layer to obtain z_i = g(h_i) = W(2)σ(W(1)h_i) where σ is
a ReLU non-linearity." Figure 8 compares it with a linear projection and with no projection (z = h).

Layer by layer, the heads follow the official code (google-research/simclr, `linear_layer` and
`projection_head` in model_util.py, v1, and tf2/model.py `LinearLayer` / `ProjectionHead`, v2:
https://github.com/google-research/simclr/blob/bab59fd96596e3ebcc6ad6d8e60e52444a2f3252/model_util.py):
every linear layer is followed by BatchNorm, so the linear layer itself has no bias (`use_bias and not
use_bn`); a hidden layer's BN has both scale gamma and shift beta (`center=use_bias=True`) and is followed
by ReLU; the output layer's BN has a scale but no shift (`center=False`) and no ReLU. Kernels start from
N(0, 0.01^2) (`RandomNormal(stddev=0.01)`).

  none:      z = h
  linear:    Linear(d, out) -> BN(no shift)
  nonlinear: Linear(d, hidden) -> BN -> ReLU -> Linear(hidden, out) -> BN(no shift)        (SimCLR v1)
  v2:        [Linear -> BN -> ReLU] x 2 -> Linear(hidden, out) -> BN(no shift)            (SimCLR v2,
             "a deeper projection head": the official flag num_proj_layers=3)
"""
from __future__ import annotations

from torch import nn

from simclr_core.validation import require_choice, require_range

HEAD_KINDS = ("none", "linear", "nonlinear", "v2")


class BatchNorm1dNoBias(nn.BatchNorm1d):
    """BatchNorm with a learnable scale gamma but no shift beta (TF's `center=False`); `bias` is None."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1):
        super().__init__(num_features, eps=eps, momentum=momentum, affine=True)
        self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        nn.init.ones_(self.weight)


def head_output_dim(kind: str, in_dim: int, out_dim: int | None = 128) -> int:
    """Width of z: `in_dim` for kind "none" (z = h) or out_dim None (z as wide as h), `out_dim` otherwise."""
    require_choice("head.kind", kind, HEAD_KINDS)
    return in_dim if kind == "none" or out_dim is None else out_dim


def _linear_bn(in_dim: int, out_dim: int, hidden: bool) -> list[nn.Module]:
    """Linear without bias, then BN with shift + ReLU (hidden layer) or BN without shift (output layer)."""
    linear = nn.Linear(in_dim, out_dim, bias=False)
    nn.init.normal_(linear.weight, std=0.01)
    if hidden:
        return [linear, nn.BatchNorm1d(out_dim), nn.ReLU(inplace=True)]
    return [linear, BatchNorm1dNoBias(out_dim)]


def projection_head(kind: str, in_dim: int, out_dim: int | None = 128, hidden_dim: int | None = None) -> nn.Module:
    """Build g(.): (B, in_dim) -> (B, head_output_dim(kind, in_dim, out_dim)).

    `kind` is one of HEAD_KINDS. `out_dim` None makes z as wide as h (`in_dim`: the paper's 2048 for a
    ResNet-50, as in Table 3). `hidden_dim` (width of the hidden layers of "nonlinear" and "v2") defaults
    to `in_dim`, the official code's choice; "none" and "linear" have no hidden layer and ignore it.
    """
    require_choice("head.kind", kind, HEAD_KINDS)
    require_range("head.in_dim", in_dim, low=1)
    if out_dim is None:
        out_dim = in_dim
    require_range("head.out_dim", out_dim, low=1)
    if hidden_dim is not None:
        require_range("head.hidden_dim", hidden_dim, low=1)
    if kind == "none":
        return nn.Identity()
    hidden = in_dim if hidden_dim is None else hidden_dim
    # (in, out, is_hidden) for each linear layer.
    layers = {
        "linear": [(in_dim, out_dim, False)],
        "nonlinear": [(in_dim, hidden, True), (hidden, out_dim, False)],
        "v2": [(in_dim, hidden, True), (hidden, hidden, True), (hidden, out_dim, False)],
    }[kind]
    return nn.Sequential(*[m for spec in layers for m in _linear_bn(*spec)])
