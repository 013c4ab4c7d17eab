"""Frozen forward passes: the representation h = f(x) of a batch of uint8 images, with nothing learned.

"h_i = f(x_i) = ResNet(x_i) where h_i in R^d is the output after the average pooling layer"
(Chen et al. 2020, Sec. 2.1): the representation before the projection head. Every protocol reads h
through `extract_features`, which runs the encoder in eval mode (BatchNorm uses, and cannot update,
its running statistics) and without autograd, then puts every module back in the mode it was in.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from torch import Tensor, nn

from simclr_core.evaluate.inputs import (is_image_stream, require_autocast_dtype, require_images, require_int,
                                         require_stats)


def module_device(module: nn.Module) -> torch.device:
    """The device of the module's first parameter (or buffer); CPU for a module with neither."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Switch every submodule to eval mode, and restore each one's own flag on exit.

    Restoring per submodule (not `module.train(was_training)`) keeps mixed states intact, e.g. an
    encoder whose BatchNorm layers a caller froze on purpose while the rest trains.
    """
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` (bf16/fp16) on ``device``; a no-op context for None (full precision)."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def normalize(images: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """uint8 (B, C, H, W) -> float32 (x / 255 - mean) / std; mean, std: (1, C, 1, 1) on images' device."""
    return (images.float().div_(255.0) - mean) / std


def channel_stats(mean: Sequence[float], std: Sequence[float], device: torch.device) -> tuple[Tensor, Tensor]:
    shape = (1, -1, 1, 1)
    return (torch.as_tensor(mean, dtype=torch.float32, device=device).reshape(shape),
            torch.as_tensor(std, dtype=torch.float32, device=device).reshape(shape))


_reused: dict | None = None


@contextlib.contextmanager
def reuse_features() -> Iterator[None]:
    """Within the block, `extract_features` computes the features of an (encoder, images, settings) once and
    returns them again when asked again (kNN and linear evaluation read the same features: a streamed split is
    then decoded once per evaluation). Only for blocks in which the encoder does not change."""
    global _reused
    outer, _reused = _reused, ({} if _reused is None else _reused)
    try:
        yield
    finally:
        _reused = outer


def extract_features(encoder: nn.Module, images: Tensor, *, mean: Sequence[float], std: Sequence[float],
                     batch_size: int = 512, device: torch.device | str | None = None,
                     autocast_dtype: torch.dtype | None = None, channels_last: bool = False) -> Tensor:
    """Representations h = f(x) of ``images`` (N, C, H, W) uint8 -> (N, D) float32 on ``device``.

    Batches of ``batch_size`` images move to ``device`` (default: the encoder's device), are normalised
    there as (x / 255 - mean) / std and run through the encoder in eval mode under ``torch.no_grad``
    (not inference_mode: linear evaluation trains a head on these tensors afterwards). With
    ``autocast_dtype`` (bf16/fp16) the forward runs under autocast; features are returned as float32.
    ``channels_last`` converts the input batches only; the caller decides the encoder's memory format.
    The images are used at their given size; resizing is the caller's business. ``images`` may also be a
    stream of uint8 batches (`is_image_stream`), read once, in order, which leaves out the images it cannot decode:
    `labelled_features` gives the labels that go with the features.
    """
    return _features_and_rows(encoder, images, mean=mean, std=std, batch_size=batch_size, device=device,
                              autocast_dtype=autocast_dtype, channels_last=channels_last)[0]


def labelled_features(encoder: nn.Module, images: Tensor, labels: Tensor, **extract) -> tuple[Tensor, Tensor]:
    """(`extract_features(encoder, images, **extract)`, the labels of the images they are features of): `labels`,
    less those of the images a stream left out as unreadable, so that an accuracy counts the images scored, each
    under its own label."""
    features, rows = _features_and_rows(encoder, images, **extract)
    return features, labels if rows is None else labels[rows.to(labels.device)]


def _features_and_rows(encoder: nn.Module, images: Tensor, *, mean: Sequence[float], std: Sequence[float],
                       batch_size: int = 512, device: torch.device | str | None = None,
                       autocast_dtype: torch.dtype | None = None, channels_last: bool = False
                       ) -> tuple[Tensor, Tensor | None]:
    """extract_features' features, and the rows of `images` they are of where a stream left some out (else None)."""
    require_images("images", images)
    require_stats(mean, std, channels=images.shape[1])
    require_int("batch_size", batch_size, low=1)
    require_autocast_dtype(autocast_dtype)
    device = module_device(encoder) if device is None else torch.device(device)
    key = (id(encoder), id(images), tuple(mean), tuple(std), batch_size, str(device), autocast_dtype, channels_last)
    if _reused is not None and key in _reused:
        return _reused[key][-1]
    mean_t, std_t = channel_stats(mean, std, device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    chunks, rows = [], []
    batches = images.batches(batch_size, rows) if is_image_stream(images) else \
        (images[start:start + batch_size] for start in range(0, images.shape[0], batch_size))
    with eval_mode(encoder), torch.no_grad(), autocast(device, autocast_dtype):
        for batch in batches:
            batch = batch.to(device, non_blocking=True)
            batch = normalize(batch, mean_t, std_t).contiguous(memory_format=memory_format)
            h = encoder(batch)
            if h.ndim != 2:
                raise ValueError(f"the encoder must map images to features (B, D); it returned shape "
                                 f"{tuple(h.shape)} (missing global pooling / flatten?)")
            chunks.append(h.float())
    features = torch.cat(chunks)
    scored = torch.tensor(rows, dtype=torch.long) if len(features) < images.shape[0] else None
    if _reused is not None:
        _reused[key] = (encoder, images, (features, scored))   # holding both keeps their ids from being reused
    return features, scored
