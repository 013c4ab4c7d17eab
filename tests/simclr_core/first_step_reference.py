"""The first training step's loss of a `world`-process run, computed by one process on the whole global batch.

Shared by the 2-process test (tests/simclr_core/test_train.py) and the registry's 2-node SLURM job
(tests/registry/test_slurm_two_nodes.py): both compare the loss their run logged at step 1 with this.
"""
from __future__ import annotations

import torch

from simclr_core.augment import build_augmentation, build_local_views
from simclr_core.config import RunConfig
from simclr_core.data import load_images
from simclr_core.losses import compute_multicrop_loss
from simclr_core.models import build_model, build_supervised_model
from simclr_core.seeding import epoch_permutation, step_seed


def reference_first_step_loss(cfg: RunConfig, world: int, global_bn: bool) -> float:
    """One process on the whole global batch, rebuilding exactly what each of `world` ranks fed the model.

    global_bn: BatchNorm statistics over all ranks' views at once; else over each rank's 2n views alone.
    With multi-crop's small views, the encoder's statistics are per side and the loss is over view pairs.
    """
    data = load_images(cfg.data, "train")
    size = data.images.shape[-1]
    augment = build_augmentation(cfg.augment, size, data.mean, data.std)
    augment_small = build_local_views(cfg.augment, size, data.mean, data.std)
    count = cfg.augment.local_crops
    perm = epoch_permutation(cfg.seed, 0, len(data.labels))
    local = cfg.batch_size // world
    views, smalls = [], []       # per rank: (view 1, view 2) and the small views k = 0..count-1
    for rank in range(world):
        batch = data.images[perm[rank * local:(rank + 1) * local]]
        generator = torch.Generator().manual_seed(step_seed(cfg.seed, 0, rank))
        views.append(augment(batch, generator))
        smalls.append(augment_small(batch, generator).chunk(count) if count else ())
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.encoder, cfg.head, size).train()
    with torch.no_grad():
        if global_bn:
            full = torch.cat([v1 for v1, _ in views] + [v2 for _, v2 in views])
            small = [torch.cat([smalls[rank][k] for rank in range(world)]) for k in range(count)]
            _, z = model((full, torch.cat(small)) if count else full)
            z1, z2, *small = z.split(cfg.batch_size)
        else:
            per_rank = [model((torch.cat(pair), torch.cat(smalls[rank])) if count else torch.cat(pair))[1]
                        .split(local) for rank, pair in enumerate(views)]
            z1, z2, *small = (torch.cat(parts) for parts in zip(*per_rank))
    return compute_multicrop_loss(cfg.loss, z1, z2, small).item()


def reference_first_step_supervised_loss(cfg: RunConfig, world: int, global_bn: bool) -> float:
    """A supervised run's first-step loss (cfg.method == "supervised"), in float64 by the textbook formula:
    the mean over the global batch of -log softmax(W h + b)[label], h = f(view 1) of each image, with BatchNorm
    statistics over all ranks' views (global_bn) or each rank's own."""
    data = load_images(cfg.data, "train")
    size = data.images.shape[-1]
    augment = build_augmentation(cfg.augment, size, data.mean, data.std)
    perm = epoch_permutation(cfg.seed, 0, len(data.labels))
    local = cfg.batch_size // world
    views, labels = [], []
    for rank in range(world):
        rows = perm[rank * local:(rank + 1) * local]
        generator = torch.Generator().manual_seed(step_seed(cfg.seed, 0, rank))
        views.append(augment(data.images[rows], generator)[0].double())
        labels.append(data.labels[rows])
    torch.manual_seed(cfg.seed)
    model = build_supervised_model(cfg.encoder, data.num_classes, size).double().train()
    with torch.no_grad():
        if global_bn:
            logits = model(torch.cat(views))[1]
        else:
            logits = torch.cat([model(v)[1] for v in views])
    labels = torch.cat(labels)
    log_probs = logits - logits.exp().sum(1, keepdim=True).log()
    return float(-log_probs[torch.arange(len(labels)), labels].mean())
