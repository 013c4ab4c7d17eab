"""The SimCLR network: base encoder f(.) followed by projection head g(.), returning both h and z.

Paper, Section 2.1: "A neural network base encoder f(·) that extracts representation vectors from augmented
data examples" and "A small neural network projection head g(·) that maps representations to the space where
contrastive loss is applied." After pre-training the head is thrown away and h is used downstream.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch
from torch import nn

from simclr_core.models.encoders import create_encoder
from simclr_core.models.heads import HEAD_KINDS, projection_head
from simclr_core.validation import require_choice

if TYPE_CHECKING:
    from simclr_core.config import EncoderConfig, HeadConfig


class SimCLRModel(nn.Module):
    """forward(x: (B, 3, H, W)) -> (h: (B, encoder.feature_dim), z: (B, out_dim)); z is h for head kind "none".

    x may also be a sequence of batches of different sides (multi-crop's full-size and small views): the
    encoder runs once per batch, so its BatchNorm statistics are per side, as in SwAV, and the head once on
    all their features; h and z are the batches' rows in order. One call, so DDP sees one forward.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(x, torch.Tensor):
            h = self.encoder(x)  # (B, feature_dim)
        else:
            h = torch.cat([self.encoder(batch) for batch in x])
        z = self.head(h)  # (B, out_dim)
        return h, z


def build_model(encoder_cfg: EncoderConfig, head_cfg: HeadConfig, image_size: int) -> SimCLRModel:
    """Encoder from `encoder_cfg` (stem "auto" resolved with `image_size`), head on its feature width.

    `encoder_cfg.global_bn` is not applied here: converting BatchNorm to a cross-process one is the job of
    the distributed module, after the model is built.
    """
    require_choice("head.kind", head_cfg.kind, HEAD_KINDS)  # fail before building the encoder
    encoder = create_encoder(encoder_cfg.name, width=encoder_cfg.width, stem=encoder_cfg.stem,
                             image_size=image_size)
    head = projection_head(head_cfg.kind, encoder.feature_dim, head_cfg.out_dim, head_cfg.hidden_dim)
    return SimCLRModel(encoder, head)
