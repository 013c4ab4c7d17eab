"""Peak memory of one local run, estimated on any machine (no GPU needed): on its GPU, what `--runs-per-gpu K`
checks; in host memory for a run that trains on the CPU, what `run` checks before it starts such runs.

    estimate_run_memory(cfg, device="cuda") -> MemoryEstimate    bytes per part; .total is what the process holds

Activations are not guessed: the run's model is built on torch's `meta` device (shapes, no storage) and runs
one forward pass of the run's batch (2 views x batch_size in one local process, plus multi-crop's small views)
while `torch.autograd.graph.saved_tensors_hooks` records every tensor autograd keeps for the backward pass,
each storage counted once, parameters and buffers left out. Those tensors are all alive when the backward
starts, the step's peak. Under mixed precision (precision auto/bf16/fp16 on a GPU; bf16, or auto on a CPU
with native bf16, on a CPU) the meta pass runs in bfloat16: under autocast the convolutions and linear layers
compute in 16 bits, and BatchNorm, ReLU and the residual add keep their 16-bit inputs' dtype, so every
activation autograd saves is 2 bytes per element (the 16-bit copy of the float32 views included); full
precision runs it in float32.

Added to the saved activations:
  gradients in flight   2 x the largest saved activation (a layer's output gradient and input gradient
                        coexist during backward; an upper bound, as saved tensors are freed as it proceeds)
  loss                  NT-Xent / DCL (whose custom autograd Function cannot run on `meta`): the float32
                        (2N, 2N) similarity blocks simclr_core.losses keeps per view pair (or the one chunk
                        it recomputes, for large 2N); the other losses are measured by the meta pass
  model state           float32 weights, their gradients, optimizer state (LARS and momentum SGD: one buffer
                        per weight, Adam/AdamW: two), autocast's 16-bit copy of the weights, BatchNorm buffers
  inputs                the float32 view buffer train() reuses every step (plus small views), the uint8 batch
  dataset               a resident training split (CIFAR, STL-10) is moved to the GPU whole when it fits
                        DEVICE_RESIDENT_BYTES; streamed data (ImageNet, folders, parquet) is not counted
Assumptions (stated numbers, not measurements):
  ALLOCATOR_SLACK = 1.10  PyTorch's caching allocator rounds blocks and keeps freed ones: 10% over the tensors
  CONTEXT_BYTES = 1 GiB   per process on a GPU: the CUDA context with torch's kernels loaded lazily (~0.5 GiB
                          on recent drivers) plus cuDNN/cuBLAS handles and their workspaces; on a CPU: Python
                          with torch and the harness imported (0.9 GiB resident, measured) and the decoded
                          split's pages. Measured on the 2-core CPU (bf16), peak resident memory (estimate):
                          ResNet-18 x0.25 at 32 px, batch 1024: 2.56 GiB (2.5), batch 2048: 4.07 (3.9);
                          ResNet-50 x0.5 at 32 px, batch 128: 4.72 (4.7), batch 256: 8.47 (8.3)
Not counted: evaluation at the end of a run (its batches run without autograd, well under the training
peak), the augmentation's transient float copies (freed before the forward pass), streamed data's prefetch.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, fields, replace

from simclr_core.config import RunConfig
from simclr_core.validation import ConfigError

GIB = float(1 << 30)
ALLOCATOR_SLACK = 1.10
CONTEXT_BYTES = 1 << 30
_SOFTMAX_LOSSES = ("nt_xent", "dcl")


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of one run's process on its GPU, by part; `total` includes the allocator slack and the context."""
    activations: int
    gradients_in_flight: int
    loss: int
    model_state: int
    inputs: int
    dataset: int
    context: int = CONTEXT_BYTES
    device: str = "cuda"

    @property
    def tensors(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self) if f.name not in ("context", "device"))

    @property
    def total(self) -> int:
        return int(self.tensors * ALLOCATOR_SLACK) + self.context

    def describe(self) -> str:
        parts = (("activations", self.activations + self.gradients_in_flight + self.loss),
                 ("weights+grads+optimizer", self.model_state), ("data", self.inputs + self.dataset))
        return (f"{self.total / GIB:.1f} GiB = " + " + ".join(f"{name} {size / GIB:.2f}" for name, size in parts)
                + f", x{ALLOCATOR_SLACK:g} allocator slack, + {self.context / GIB:g} GiB "
                + ("CUDA context" if self.device == "cuda" else "for the process"))


def view_side(cfg: RunConfig) -> int:
    """Side of the run's training views, as train() resolves it (without decoding: simclr_core.data.feed)."""
    from simclr_core.data.feed import view_side as data_view_side

    return data_view_side(cfg.data)


def estimate_run_memory(cfg: RunConfig, device: str = "cuda") -> MemoryEstimate:
    """Peak memory of `cfg` trained by one local process with the whole batch: on its GPU ("cuda"), or in this
    machine's memory when it trains on the CPU ("cpu")."""
    side = view_side(cfg)
    small = cfg.augment.local_crop_side(side) if cfg.augment.local_crops else 0
    data = cfg.data
    if device == "cuda":
        half = cfg.precision != "no"
    else:
        from simclr_core.precision import cpu_supports_bf16

        half = cfg.precision == "bf16" or (cfg.precision == "auto" and cpu_supports_bf16())
    try:
        estimate = _estimate(cfg.encoder, cfg.head, cfg.loss.kind, cfg.optim.name, cfg.optim.momentum > 0, half,
                             cfg.batch_size, side, cfg.augment.local_crops, small, data.dataset, data.loader,
                             data.train_limit, data.image_size, cfg.method == "supervised")
    except (RuntimeError, TypeError, OverflowError) as exc:
        if "verflow" not in str(exc):
            raise
        raise ConfigError(f"batch_size={cfg.batch_size}, {side} px views (data.image_size={data.image_size}) and "
                          f"head.out_dim={cfg.head.out_dim} make a tensor larger than any machine holds (torch: "
                          f"{str(exc).splitlines()[0][:200]}); lower the one that is too large") from None
    return replace(estimate, device=device)


@functools.lru_cache(maxsize=64)
def _estimate(encoder, head, loss_kind: str, optim_name: str, momentum: bool, half: bool, batch: int, side: int,
              local_crops: int, small_side: int, dataset: str, loader: str, train_limit: int | None,
              image_size: int | None, supervised: bool = False) -> MemoryEstimate:
    import torch

    from simclr_core.config import LossConfig
    from simclr_core.losses import compute_multicrop_loss
    from simclr_core.models import build_model, build_supervised_model

    dtype = torch.bfloat16 if half else torch.float32
    with torch.device("meta"):
        # A supervised run's classifier: as wide as ImageNet's 1,000 classes at most (a few MB either way).
        model = build_supervised_model(encoder, 1000, side) if supervised else build_model(encoder, head, side)
    weights = sum(p.numel() for p in model.parameters()) * 4
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    optimizer_copies = 2 if optim_name in ("adam", "adamw") else int(momentum)
    model_state = weights * (2 + optimizer_copies) + (weights // 2 if half else 0) + buffers

    model = model.to(dtype)
    own = {t.untyped_storage()._cdata for t in (*model.parameters(), *model.buffers())}
    saved: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage._cdata not in own:
            saved[storage._cdata] = storage.nbytes()
        return tensor

    views = torch.empty(((1 if supervised else 2) * batch, 3, side, side), device="meta", dtype=dtype)
    small_views = torch.empty((local_crops * batch, 3, small_side, small_side), device="meta", dtype=dtype)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        if supervised:      # one view per image
            model(views)
            loss = 0
        else:
            _, z = model(views if not local_crops else (views, small_views))
            z1, z2, *rest = z.float().split(batch)
            if loss_kind in _SOFTMAX_LOSSES:
                loss = _softmax_loss_bytes(batch, pairs=1 + 2 * local_crops)
            else:
                compute_multicrop_loss(LossConfig(kind=loss_kind), z1, z2, rest)
                loss = 0
    largest = max(saved.values(), default=0)

    inputs = (views.numel() + small_views.numel()) * 4 + batch * 3 * side * side
    return MemoryEstimate(activations=sum(saved.values()), gradients_in_flight=2 * largest, loss=loss,
                          model_state=model_state, inputs=inputs,
                          dataset=_resident_dataset_bytes(dataset, loader, train_limit, image_size))


def _softmax_loss_bytes(batch: int, pairs: int) -> int:
    """simclr_core.losses._NTXent's memory: each view pair's (2N, 2N) float32 blocks kept for backward when they
    hold at most _KEEP_ELEMENTS, else recomputed there one chunk of at most _CHUNK_ELEMENTS at a time."""
    from simclr_core.losses import _CHUNK_ELEMENTS, _KEEP_ELEMENTS

    elements = (2 * batch) ** 2
    return 4 * (pairs * elements if elements <= _KEEP_ELEMENTS else min(elements, _CHUNK_ELEMENTS))


def _resident_dataset_bytes(dataset: str, loader: str, train_limit: int | None, image_size: int | None) -> int:
    from registry.estimate import TRAIN_IMAGES
    from simclr_core.config import DataConfig
    from simclr_core.data.catalog import native_image_size
    from simclr_core.data.feed import DEVICE_RESIDENT_BYTES, resolve_loader

    if resolve_loader(DataConfig(dataset=dataset, loader=loader)) != "resident" or dataset not in TRAIN_IMAGES:
        return 0
    side = image_size or native_image_size(dataset)
    count = min(TRAIN_IMAGES[dataset], train_limit or TRAIN_IMAGES[dataset])
    size = count * 3 * side * side
    return size if size <= DEVICE_RESIDENT_BYTES else 0
