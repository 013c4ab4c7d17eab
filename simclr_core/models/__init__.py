"""Encoder f(.), projection head g(.) and the SimCLR network that chains them."""
from simclr_core.models.encoders import (
    ResNetEncoder,
    create_encoder,
    list_encoders,
    register_encoder,
    resolve_stem,
)
from simclr_core.models.heads import HEAD_KINDS, BatchNorm1dNoBias, head_output_dim, projection_head
from simclr_core.models.simclr import SimCLRModel, build_model
from simclr_core.models.supervised import SupervisedModel, build_supervised_model

__all__ = [
    "HEAD_KINDS",
    "BatchNorm1dNoBias",
    "ResNetEncoder",
    "SimCLRModel",
    "SupervisedModel",
    "build_model",
    "build_supervised_model",
    "create_encoder",
    "head_output_dim",
    "list_encoders",
    "projection_head",
    "register_encoder",
    "resolve_stem",
]
