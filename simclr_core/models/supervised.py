"""The network of the paper's supervised baselines: the same base encoder f(.), and a linear classifier on h.

Table 1, Figure 7 and Table B.3 compare SimCLR with "supervised" ResNets trained on the labels with the same
family of augmentations. The official code trains them as its fine-tuning mode does from a random
initialisation: the encoder's representation h feeds a linear layer with one output per class (its
`supervised_head`), trained with softmax cross-entropy, every layer trained.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from simclr_core.models.encoders import create_encoder

if TYPE_CHECKING:
    from simclr_core.config import EncoderConfig


class SupervisedModel(nn.Module):
    """forward(x: (B, 3, H, W)) -> (h: (B, encoder.feature_dim), logits: (B, num_classes)).

    Named as SimCLRModel's parts (`encoder`, `head`), so that checkpoints, evaluation and the optimiser's
    exclusions treat both networks alike; `head` is the classifier."""

    def __init__(self, encoder: nn.Module, classifier: nn.Linear):
        super().__init__()
        self.encoder = encoder
        self.head = classifier

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return h, self.head(h)


def build_supervised_model(encoder_cfg: EncoderConfig, num_classes: int, image_size: int) -> SupervisedModel:
    """Encoder from `encoder_cfg` (stem "auto" resolved with `image_size`) and a linear classifier on h."""
    encoder = create_encoder(encoder_cfg.name, width=encoder_cfg.width, stem=encoder_cfg.stem, image_size=image_size)
    return SupervisedModel(encoder, nn.Linear(encoder.feature_dim, num_classes))
