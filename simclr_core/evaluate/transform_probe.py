"""Transformation prediction (Chen et al. 2020, Table 3): how much of an applied transformation h and g(h) keep.

"we train an additional MLP on the frozen representation to predict which transformation was applied"
(Sec. 4.2, Table 3): if g(h) has lost what h still knows about the transformation, the head removed
information that the contrastive loss asked it to be invariant to. Four tasks, each a labelled transformation
of the evaluation images (random guess in brackets, the share of the most frequent label):

  color     colour vs grayscale: colour jitter of strength augment.color_strength with p = 0.8, then
            grayscale with p = 0.2 (the pretraining colour distortion); label = grayscaled        (80)
  rotation  k quarter turns counter-clockwise, k uniform in {0, 1, 2, 3}; label = k              (25)
  noise     Gaussian noise with p = 0.5, std per image uniform in augment.noise_std (as the
            pretraining op); label = corrupted                                                  (50)
  sobel     Sobel filtering with p = 0.5; label = filtered                                      (50)

Every image is first cropped and flipped as in pretraining (augment.crop_scale, augment.crop_ratio, flip with
p = 0.5, resized back to its side), so the probe sees the inputs the network was trained on; on the streamed
data path each crop is drawn on the original image, as in pretraining. With the default
noise_std (0, 0.1) some "corrupted" images carry almost no noise: that task's ceiling is below 100 %.

The encoder f(.) and the head g(.) run in eval mode without autograd, on each batch as it is transformed; both
are checked bit for bit afterwards (parameters and BatchNorm statistics). The probe is one hidden layer,
W2 relu(W1 x) as the paper's g, of hidden width the width of h for both representations (the paper's 2048 for
a ResNet-50), trained on the standardised features of the train split with the linear evaluation's optimiser
(SGD, Nesterov momentum 0.9, cosine decay, no weight decay); it reports accuracy on the test split in percent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from simclr_core.augment import functional as K, originals, sampling
from simclr_core.config import AugmentConfig
from simclr_core.evaluate.accuracy import topk_accuracy
from simclr_core.evaluate.features import autocast, eval_mode, module_device
from simclr_core.evaluate.frozen import require_unchanged, snapshot_state
from simclr_core.evaluate.inputs import (is_image_stream, require_autocast_dtype, require_images, require_int,
                                         require_stats)
from simclr_core.evaluate.linear import fit_on_features
from simclr_core.seeding import mix
from simclr_core.validation import ConfigError, require_choice, require_range


@dataclass(frozen=True)
class Task:
    """One prediction task: ``transform(x, augment, generator) -> (x', labels)`` on float (N, 3, S, S) images in
    [0, 1]; every per-image parameter (labels included) is drawn from ``generator``, a CPU generator."""
    classes: int
    transform: Callable[[Tensor, AugmentConfig, torch.Generator], tuple[Tensor, Tensor]]


def _color(x: Tensor, augment: AugmentConfig, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    n = x.shape[0]
    jittered = sampling.bernoulli(n, 0.8, generator)
    factors, order = sampling.color_jitter_params(n, augment.color_strength, generator)
    gray = sampling.bernoulli(n, 0.2, generator)
    factors = torch.where(jittered.unsqueeze(1), factors, torch.tensor([1.0, 1.0, 1.0, 0.0]))
    out = K.color_jitter(x, factors, order)
    out = K.apply_to_subset(out, gray, lambda rows, _: K.rgb_to_grayscale(rows, 3), inplace=True)
    return out, gray.long()


def _rotation(x: Tensor, augment: AugmentConfig, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    k = torch.randint(0, 4, (x.shape[0],), generator=generator)
    return K.rotate90(x, k), k


def _noise(x: Tensor, augment: AugmentConfig, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    n = x.shape[0]
    corrupted = sampling.bernoulli(n, 0.5, generator)
    std = sampling.uniform(n, *augment.noise_std, generator) * corrupted
    noise = torch.randn(x.shape, generator=sampling.device_generator(generator, x.device), device=x.device)
    out = K.add_gaussian_noise(x, std, noise)
    # std 0 still clamps x + 0 to [0, 1], which x already is: the clean rows come back as they went in.
    return out, corrupted.long()


def _sobel(x: Tensor, augment: AugmentConfig, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    filtered = sampling.bernoulli(x.shape[0], 0.5, generator)
    return K.apply_to_subset(x, filtered, lambda rows, _: K.sobel(rows)), filtered.long()


TASKS: dict[str, Task] = {      # named in simclr_core/metric_names.py too (TRANSFORM_TASKS), which reads no torch
    "color": Task(2, _color),
    "rotation": Task(4, _rotation),
    "noise": Task(2, _noise),
    "sobel": Task(2, _sobel),
}


def require_tasks(name: str, tasks: Sequence[str]) -> tuple[str, ...]:
    """A non-empty sequence of distinct names of TASKS."""
    if isinstance(tasks, str) or not isinstance(tasks, (tuple, list)) or not tasks:
        raise ConfigError(f"{name}={tasks!r} must name at least one task; choose from: "
                          f"{', '.join(map(repr, TASKS))}")
    for task in tasks:
        require_choice(name, task, TASKS)
    repeated = sorted({t for t in tasks if list(tasks).count(t) > 1})
    if repeated:
        raise ConfigError(f"{name}={tuple(tasks)!r} names {', '.join(map(repr, repeated))} more than once")
    return tuple(tasks)


def labelled_views(images: Tensor | Sequence[Tensor], task: str, augment: AugmentConfig,
                   generator: torch.Generator, side: int | None = None) -> tuple[Tensor, Tensor]:
    """uint8 (N, C, H, W) images -> (float (N, 3, H, H) in [0, 1], labels (N,) int64 on the CPU): each image
    cropped and flipped as in pretraining (resized to side H), then transformed by ``task`` as its label says.
    ``images`` may also be a list of originals (C, H_i, W_i) of any sizes (the streamed path): each crop is then
    drawn on its own image and resized to ``side``, with the same draws from ``generator``."""
    if isinstance(images, Tensor):
        x = K.to_float_rgb(images)
        n, _, height, width = x.shape
        boxes = sampling.crop_boxes(n, height, width, augment.crop_scale, augment.crop_ratio, generator)
        x = K.resized_crop(x, boxes, height, sampling.bernoulli(n, 0.5, generator))
    else:
        n = len(images)
        sizes = torch.tensor([tuple(image.shape[-2:]) for image in images], dtype=torch.int64)
        boxes = sampling.crop_boxes(n, sizes[:, 0], sizes[:, 1], augment.crop_scale, augment.crop_ratio, generator)
        x = originals.resized_crops(images, boxes, side, sampling.bernoulli(n, 0.5, generator))
    return TASKS[task].transform(x, augment, generator)


def probe_features(encoder: nn.Module, head: nn.Module, images: Tensor, task: str, *, augment: AugmentConfig,
                   generator: torch.Generator, mean: Sequence[float], std: Sequence[float], batch_size: int,
                   device: torch.device, autocast_dtype: torch.dtype | None = None, channels_last: bool = False
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """(h (N, D), g(h) (N, D'), labels (N,)) of ``task``'s labelled views of ``images``, float32 on ``device``.

    Batch after batch in order, so the draws are a function of the generator's seed and ``batch_size``. A stream
    of images (the streamed path's EvalImages) is read as its originals, each view cropped from its own image; an
    unreadable one is left out with its label, as in evaluation passes (nothing here needs a batch of full size: the
    networks run in eval mode), so that no image counts twice in the probe's training set or its accuracy.
    """
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    count, side = images.shape[0], images.shape[-1]
    order = [torch.arange(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]
    if is_image_stream(images):
        batches = (originals for originals, _ in images.originals(torch.arange(count), leave_out=True).batches(order))
    else:
        batches = (images[int(rows[0]):int(rows[-1]) + 1].to(device, non_blocking=True) for rows in order)
    hs, zs, labels = [], [], []
    with eval_mode(encoder), eval_mode(head), torch.no_grad():
        for batch in batches:
            x, y = labelled_views(batch, task, augment, generator, side)
            x = K.normalize(x, tuple(mean), tuple(std)).contiguous(memory_format=memory_format)
            with autocast(device, autocast_dtype):
                h = encoder(x)
                z = head(h)
            hs.append(h.float())
            zs.append(z.float())
            labels.append(y)
    return torch.cat(hs), torch.cat(zs), torch.cat(labels).to(device)


def mlp_probe(in_dim: int, hidden_dim: int, num_classes: int, generator: torch.Generator) -> nn.Sequential:
    """W2 relu(W1 x) + biases; He-normal W1, LeCun-normal W2, zero biases, drawn from ``generator``."""
    first, last = nn.Linear(in_dim, hidden_dim), nn.Linear(hidden_dim, num_classes)
    nn.init.normal_(first.weight, std=math.sqrt(2.0 / in_dim), generator=generator)
    nn.init.normal_(last.weight, std=math.sqrt(1.0 / hidden_dim), generator=generator)
    nn.init.zeros_(first.bias)
    nn.init.zeros_(last.bias)
    return nn.Sequential(first, nn.ReLU(), last)


def probe_accuracy(train_features: Tensor, train_labels: Tensor, test_features: Tensor, test_labels: Tensor, *,
                   num_classes: int, hidden_dim: int, epochs: int, batch_size: int, lr: float, seed: int,
                   weight_decay: float = 0.0) -> float:
    """Test accuracy (percent) of `mlp_probe` trained with cross-entropy on (N, D) features.

    Both splits are standardised with the train split's per-dimension mean and variance (fixed, unlike a
    BatchNorm whose running statistics would lag on a few hundred examples).
    """
    var, mean = torch.var_mean(train_features, dim=0, correction=0)
    scale = (var + 1e-5).rsqrt()
    train_x, test_x = (train_features - mean) * scale, (test_features - mean) * scale
    probe = mlp_probe(train_x.shape[1], hidden_dim, num_classes, torch.Generator().manual_seed(seed))
    fit_on_features(probe.to(train_x.device), train_x, train_labels, epochs=epochs, batch_size=batch_size, lr=lr,
                    weight_decay=weight_decay, shuffle=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        logits = probe(test_x)
    return topk_accuracy(logits, test_labels, ks=(1,))[0]


def transform_probe_eval(encoder: nn.Module, head: nn.Module, train_images: Tensor, test_images: Tensor, *,
                         mean: Sequence[float], std: Sequence[float], tasks: Sequence[str] = tuple(TASKS),
                         augment: AugmentConfig = AugmentConfig(), epochs: int = 30, batch_size: int = 256,
                         lr: float = 0.1, seed: int = 0, extract_batch_size: int = 512,
                         device: torch.device | str | None = None, autocast_dtype: torch.dtype | None = None,
                         channels_last: bool = False) -> dict[str, float]:
    """Per task, the probe's test accuracy (percent) on h and on g(h), and the random guess of the test labels:
    {"transform_color_h", "transform_color_gh", "transform_color_random_guess", ...}.

    The images' class labels play no part. The labelled views of split s for task t come from a generator seeded
    with (seed, t's place in TASKS, s), so a task's numbers do not depend on which other tasks run.
    """
    tasks = require_tasks("tasks", tasks)
    for split, images in (("train", train_images), ("test", test_images)):
        require_images(f"{split}_images", images)
        if images.shape[1] != 3:
            raise ConfigError(f"{split}_images has {images.shape[1]} channel(s); the transformations act on "
                              "RGB images (3 channels)")
    require_stats(mean, std, channels=3)
    require_int("epochs", epochs, low=1)
    require_int("batch_size", batch_size, low=1)
    require_int("extract_batch_size", extract_batch_size, low=1)
    require_range("lr", lr, low=0, low_inclusive=False)
    require_int("seed", seed, low=0)
    require_autocast_dtype(autocast_dtype)

    device = module_device(encoder) if device is None else torch.device(device)
    frozen = nn.ModuleDict({"encoder": encoder, "head": head})
    before = snapshot_state(frozen)
    extract = dict(augment=augment, mean=mean, std=std, batch_size=extract_batch_size, device=device,
                   autocast_dtype=autocast_dtype, channels_last=channels_last)
    metrics: dict[str, float] = {}
    for task in tasks:
        index = list(TASKS).index(task)
        train_h, train_z, train_y = probe_features(encoder, head, train_images, task,
                                                   generator=torch.Generator().manual_seed(mix(seed, index, 0)),
                                                   **extract)
        test_h, test_z, test_y = probe_features(encoder, head, test_images, task,
                                                generator=torch.Generator().manual_seed(mix(seed, index, 1)),
                                                **extract)
        probe = dict(num_classes=TASKS[task].classes, hidden_dim=train_h.shape[1], epochs=epochs,
                     batch_size=batch_size, lr=lr, seed=seed)
        metrics[f"transform_{task}_h"] = probe_accuracy(train_h, train_y, test_h, test_y, **probe)
        metrics[f"transform_{task}_gh"] = probe_accuracy(train_z, train_y, test_z, test_y, **probe)
        counts = torch.bincount(test_y, minlength=TASKS[task].classes)
        metrics[f"transform_{task}_random_guess"] = 100.0 * counts.max().item() / test_y.numel()
    require_unchanged(frozen, before, during="transformation prediction",
                      what="the encoder f(.) or the projection head g(.)")
    return metrics


__all__ = ["TASKS", "Task", "labelled_views", "mlp_probe", "probe_accuracy", "probe_features", "require_tasks",
           "transform_probe_eval"]
