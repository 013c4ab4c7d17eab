"""Compose named ops into the stochastic module that turns a batch into two correlated views.

Paper, Section 2.1: "A stochastic data augmentation module that transforms any given data example
randomly resulting in two correlated views of the same example, denoted x~_i and x~_j, which we
consider as a positive pair."
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from simclr_core.augment import fastpath, functional as F, originals
from simclr_core.augment.ops import OPS, Op, Params, take_rows
from simclr_core.config import AugmentConfig
from simclr_core.validation import ConfigError, require_choice, require_pair, require_range


# On a CPU, the batch is augmented in chunks whose two float32 views take at most this many bytes.
# Every eager kernel returns a fresh tensor; at 224 px a whole batch's views are 308 MB, which glibc
# serves with a new mmap that the kernel zeroes page by page on first touch (~40% of the CPU time,
# measured). Chunk-sized temporaries are reused from the allocator's free lists and stay in the L3
# cache: at 224 px, 1.4 s -> 1.0 s per 256 images with huge pages on, 2.3 s -> 1.0 s without
# (benchmarks/RESULTS.md). Batches at 32 px (6 MB for 256 images) are never split.
CPU_CHUNK_BYTES = 16 << 20


@dataclass(frozen=True)
class TwoViewAugmentation:
    """``(images, generator) -> (view1, view2)``, float32 (B, 3, image_size, image_size), normalised.

    ``both`` runs on both views (each view draws its own parameters: the two views are stacked
    into one 2B batch, so every op runs once per call); ``first_only`` then runs on view 1 only.
    All parameters of the batch are drawn first; on a CPU they are then applied chunk by chunk
    (CPU_CHUNK_BYTES), the chunks side by side on single-threaded workers (``fastpath.in_chunks``), which
    gives the same views as applying them to the whole batch.
    """
    both: tuple[tuple[str, Op], ...]
    first_only: tuple[tuple[str, Op], ...]
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, images: Tensor, generator: torch.Generator, *,
                 out: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``out``, if given: a float32 (2B, 3, image_size, image_size) tensor on the images' device, in any
        memory format, that receives view 1 in rows 0..B-1 and view 2 in rows B..2B-1; the views returned are
        its two halves. A training loop that hands the same tensor to every step feeds its model both views
        without a concatenation, and at 224 px saves the page faults of 308 MB of fresh memory per batch."""
        return self._make(images, generator, out, views=2)

    def first_view(self, images: Tensor, generator: torch.Generator, *, out: Tensor | None = None) -> Tensor:
        """View 1 alone, equal to ``self(images, generator)[0]``: every parameter of both views is drawn as
        there (the generator ends in the same state), and view 2's ops are never applied. A supervised run
        trains on it. ``out``, if given: a float32 (B, 3, image_size, image_size) tensor, as in __call__."""
        return self._make(images, generator, out, views=1)[0]

    def _make(self, images: Tensor, generator: torch.Generator, out: Tensor | None, views: int) -> tuple[Tensor, ...]:
        F.check_images(images)                                               # before any draw
        b, _, height, width = images.shape
        if out is not None:
            self._check_out(out, b, images.device, views)
        params = self._draw(b, height, width, images.device, generator)
        if views == 1:
            params = self._take(params, 0, b, b, views=1)
        make = functools.partial(self._views, views=views)
        if images.device.type == "cpu":
            chunked = fastpath.in_chunks(make, images, params, functools.partial(self._take, views=views), out,
                                         self.image_size, self.chunk_rows(height, width), views)
            if chunked is not None:
                return chunked
        return make(images, params, out=None if out is None else out.chunk(views))

    def _check_out(self, out: Tensor, b: int, device: torch.device, views: int) -> None:
        shape = (views * b, 3, self.image_size, self.image_size)
        if tuple(out.shape) != shape or out.dtype != torch.float32 or out.device != device:
            which = "both views" if views == 2 else "view 1"
            raise ValueError(f"out must be a float32 tensor of shape {shape} on {device} ({which} of {b} "
                             f"images), got {out.dtype} {tuple(out.shape)} on {out.device}")

    def chunk_rows(self, height: int, width: int) -> int:
        """Images per chunk on a CPU: their two float32 views, at the larger of the input and output
        size, fit in CPU_CHUNK_BYTES."""
        pixels = max(height * width, self.image_size ** 2)
        return max(1, CPU_CHUNK_BYTES // (2 * 3 * pixels * 4))

    def _draw(self, b: int, height: int, width: int, device: torch.device,
              generator: torch.Generator) -> tuple[list[Params], list[Params]]:
        """Every op's parameters, in pipeline order: the ops on both views (2B rows: view 1's, then
        view 2's), then the view-1 ops (B rows)."""
        if "crop" not in self._names():
            height = width = self.image_size
        both = []
        for name, op in self.both:
            both.append(op.draw(2 * b, height, width, device, generator))
            if name == "crop":
                height = width = self.image_size
        first = [op.draw(b, height, width, device, generator) for _, op in self.first_only]
        return both, first

    @staticmethod
    def _take(params: tuple[list[Params], list[Params]], start: int, stop: int, b: int, views: int = 2):
        """The parameters of images start..stop-1 out of a batch of b: rows start..stop-1 of view 1 (and, with
        views=2, of view 2, b later)."""
        both, first = params
        rows = torch.cat([torch.arange(v * b + start, v * b + stop) for v in range(views)])
        return [take_rows(p, rows) for p in both], [take_rows(p, slice(start, stop)) for p in first]

    def _views(self, images: Tensor, params: tuple[list[Params], list[Params]],
               out: tuple[Tensor, ...] | None = None, views: int = 2) -> tuple[Tensor, ...]:
        """The first `views` views (1 or 2) of each image, from their parameters (views x B rows each)."""
        both_params, first_params = list(params[0]), params[1]
        both_ops = [op for _, op in self.both]
        b = images.shape[0]
        if self._names()[:1] == ("crop",):
            x = fastpath.crop_resize_flip(images, *both_params[0], self.image_size)
            both_ops, both_params = both_ops[1:], both_params[1:]
        elif "crop" in self._names():
            x = torch.empty((views * b, 3, *images.shape[2:]), dtype=torch.float32, device=images.device)
            F.to_float_rgb(images, out=x[:b])
            x[b:].copy_(x[:b].repeat(views - 1, 1, 1, 1))                    # (views x B, 3, H, W) in [0, 1]
        else:
            x = F.resize(F.to_float_rgb(images), self.image_size).repeat(views, 1, 1, 1)
        return self._rest(x, both_ops, both_params, first_params, out, views)

    def _rest(self, x: Tensor, both_ops: list[Op], both_params: list[Params], first_params: list[Params],
              out: tuple[Tensor, ...] | None, views: int = 2) -> tuple[Tensor, ...]:
        """The ops after the views tensor exists (views x B rows), then the view-1 ops, then normalisation."""
        # `x` is always a tensor made here (then each op's result), so ops may overwrite it; view 1
        # is a slice of it that nothing else reads.
        for op, p in zip(both_ops, both_params):
            x = op.apply_owned(x, p)
        view1, *others = x.chunk(views)
        for (_, op), p in zip(self.first_only, first_params):
            view1 = op.apply_owned(view1, p)
        outs = out or (None,) * views
        return tuple(self._normalize(v, o) for v, o in zip((view1, *others), outs))

    def views_from_originals(self, images: Sequence[Tensor], generator: torch.Generator, *,
                             out: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The two views of images of different sizes, (C, H_i, W_i) uint8 each on one device: each view's
        crop is drawn on its own image's height and width and resized once to image_size (originals.py),
        as the paper crops ImageNet photographs; the other ops then run as in __call__. Without "crop" in
        the ops each image's centred square is resized. `out` as in __call__."""
        return self._make_from_originals(images, generator, out, views=2)

    def first_view_from_originals(self, images: Sequence[Tensor], generator: torch.Generator, *,
                                  out: Tensor | None = None) -> Tensor:
        """View 1 alone of images of different sizes, equal to ``views_from_originals(...)[0]`` (first_view's
        counterpart)."""
        return self._make_from_originals(images, generator, out, views=1)[0]

    def _make_from_originals(self, images: Sequence[Tensor], generator: torch.Generator, out: Tensor | None,
                             views: int) -> tuple[Tensor, ...]:
        names = self._names()
        if "crop" in names and names[0] != "crop":
            raise ConfigError(f"augment.ops={names!r}: images of different sizes need 'crop' first (or no crop)")
        b = len(images)
        device = images[0].device
        if out is not None:
            self._check_out(out, b, device, views)
        sizes = torch.tensor([tuple(x.shape[-2:]) for x in images], dtype=torch.int64)
        both_ops = [op for _, op in self.both]
        if names[:1] == ("crop",):
            boxes, flip = both_ops[0].draw(2 * b, sizes[:, 0].repeat(2), sizes[:, 1].repeat(2), device, generator)
            both_ops = both_ops[1:]
        else:
            boxes, flip = originals.central_boxes(sizes).repeat(2, 1), None
        size = self.image_size
        both_params = [op.draw(2 * b, size, size, device, generator) for op in both_ops]
        first_params = [op.draw(b, size, size, device, generator) for _, op in self.first_only]
        rows = slice(0, views * b)                        # view 1's rows (and view 2's): all drawn, these used
        boxes, flip = boxes[rows], None if flip is None else flip[rows]
        both_params = [take_rows(p, rows) for p in both_params]
        x = originals.resized_crops(images, boxes, size, flip)
        return self._rest(x, both_ops, both_params, first_params, None if out is None else out.chunk(views), views)

    def _normalize(self, x: Tensor, out: Tensor | None) -> Tensor:
        return fastpath.normalize(x, self.mean, self.std, out)

    def _names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.both)

    def __repr__(self) -> str:
        both = ", ".join(self._names()) or "resize"
        first = ", ".join(name for name, _ in self.first_only)
        return (f"TwoViewAugmentation(both=[{both}], first_only=[{first}], image_size={self.image_size})")


def build_augmentation(cfg: AugmentConfig, image_size: int, mean: tuple[float, float, float],
                       std: tuple[float, float, float]) -> TwoViewAugmentation:
    """Build the two-view augmentation from ``cfg``; raise ConfigError on any bad name or value.

    ``cfg.ops`` run in order on both views. A name listed twice runs once (the diagonal of Figure 5,
    e.g. ("color", "color"), is the single transformation). Without "crop", images are only resized
    to ``image_size``. With ``cfg.one_branch``, the paper's Figure 5 protocol: "we always first
    randomly crop images and resize them to the same resolution, and we then apply the targeted
    transformation(s) only to one branch of the framework in Figure 2, while leaving the other
    branch as the identity".
    """
    validate_augment_config(cfg)
    require_range("image_size", image_size, low=1)
    for name, values in (("mean", mean), ("std", std)):
        if len(values) != 3:
            raise ConfigError(f"{name}={values!r} must have 3 values (R, G, B)")
        for v in values:
            require_range(name, v, low=0 if name == "std" else None, low_inclusive=name != "std")

    names = tuple(dict.fromkeys(cfg.ops))
    build = {name: OPS[name](cfg, image_size) for name in (*names, "crop")}
    if cfg.one_branch:
        both = (("crop", build["crop"]),)
        first_only = tuple((name, build[name]) for name in names if name != "crop")
    else:
        both, first_only = tuple((name, build[name]) for name in names), ()
    return TwoViewAugmentation(both, first_only, int(image_size), tuple(mean), tuple(std))


def validate_augment_config(cfg: AugmentConfig) -> AugmentConfig:
    """Raise ConfigError naming the bad field, its value and the valid choices or range."""
    if not cfg.ops:
        raise ConfigError("augment.ops is empty; name at least one of: " + ", ".join(map(repr, OPS)))
    for op in cfg.ops:
        require_choice("augment.ops", op, OPS)
    require_range("augment.color_strength", cfg.color_strength, low=0)
    require_pair("augment.crop_scale", cfg.crop_scale, low=0, high=1, low_inclusive=False)
    require_pair("augment.crop_ratio", cfg.crop_ratio, low=0, low_inclusive=False)
    require_range("augment.blur_prob", cfg.blur_prob, low=0, high=1)
    require_pair("augment.blur_sigma", cfg.blur_sigma, low=0, low_inclusive=False)
    require_range("augment.cutout_fraction", cfg.cutout_fraction, low=0, high=1, low_inclusive=False)
    require_pair("augment.noise_std", cfg.noise_std, low=0)
    for key in ("sobel_prob", "noise_prob", "rotate_prob", "equalize_prob", "solarize_prob", "motion_blur_prob",
                "solarize_threshold"):
        require_range(f"augment.{key}", getattr(cfg, key), low=0, high=1)
    require_range("augment.motion_blur_fraction", cfg.motion_blur_fraction, low=0, high=1, low_inclusive=False)
    require_range("augment.local_crops", cfg.local_crops, low=0)
    if cfg.local_crops % 2:
        raise ConfigError(f"augment.local_crops={cfg.local_crops} must be even (small views are made in pairs); "
                          f"use {cfg.local_crops - 1} or {cfg.local_crops + 1}")
    if cfg.local_crop_size is not None:
        require_range("augment.local_crop_size", cfg.local_crop_size, low=1)
    require_pair("augment.local_crop_scale", cfg.local_crop_scale, low=0, high=1, low_inclusive=False)
    if cfg.local_crops and "crop" not in cfg.ops:
        raise ConfigError(f"augment.local_crops={cfg.local_crops} needs 'crop' in augment.ops={cfg.ops!r}: "
                          "small views are crops of the image")
    if cfg.local_crops and cfg.one_branch:
        raise ConfigError(f"augment.local_crops={cfg.local_crops} needs augment.one_branch=False: the Figure 5 "
                          "protocol compares one augmented branch with one identity branch, there is no third")
    return cfg
