"""`Step`: one pretraining step as simclr_core.train runs it, for the benchmarks that time steps."""
from __future__ import annotations

import torch

from simclr_core.compiling import compile_model, resolve_compile
from simclr_core.config import RunConfig
from simclr_core.losses import compute_loss
from simclr_core.models import build_model
from simclr_core.optim import build_optimizer, set_lr, warmup_cosine
from simclr_core.precision import autocast_dtype, resolve_precision
from simclr_core.train import total_steps_for

CIFAR10_TRAIN_IMAGES = 50_000


class Step:
    """One optimisation step as simclr_core.train runs it, on both views stacked (view 1's rows, then view 2's)
    in channels_last; ``loss_fn`` may replace its loss. ``num_images`` sets the lr schedule's length;
    ``image_size`` the views' side (which picks the CIFAR or ImageNet stem, as train() does). ``cfg.compile``
compiles the model as train() does (the first call then compiles)."""

    def __init__(self, cfg: RunConfig, device: torch.device, num_images: int = CIFAR10_TRAIN_IMAGES,
                 loss_fn=None, image_size: int = 32):
        torch.manual_seed(cfg.seed)
        self.device = device
        self.model = build_model(cfg.encoder, cfg.head, image_size).to(device, memory_format=torch.channels_last)
        self.model.train()
        self.compile_mode = resolve_compile(cfg.compile, device)
        compile_model(self.model, self.compile_mode)
        self.optimizer = build_optimizer(cfg.optim, self.model, cfg.peak_lr())
        self.dtype = autocast_dtype(resolve_precision(cfg.precision, device))
        self.loss_fn = loss_fn or (lambda z1, z2: compute_loss(cfg.loss, z1, z2))
        self.total_steps = total_steps_for(cfg, num_images)
        self.warmup_steps = round(cfg.optim.warmup_epochs * (num_images // cfg.batch_size))
        self.peak_lr = cfg.peak_lr()
        self.index = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=self.dtype or torch.bfloat16, enabled=self.dtype is not None):
            _, z = self.model(x)
        z1, z2 = z.float().chunk(2)
        loss = self.loss_fn(z1, z2)
        set_lr(self.optimizer, warmup_cosine(self.index, self.total_steps, self.warmup_steps, self.peak_lr))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.index += 1
        return loss.detach()
