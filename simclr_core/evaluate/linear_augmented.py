"""Linear evaluation as the paper ran it on ImageNet: the classifier trains on random crop + flip views of the
training images, passed through the frozen encoder anew in every epoch.

Appendix B.6: "For linear evaluation, we follow similar procedure as fine-tuning (described in Appendix B.5), except
that a larger learning rate of 1.6 (following LearningRate = 0.1 x BatchSize/256) and longer training of 90
epochs"; B.5: "For data augmentation during fine-tuning, we only perform random cropping with resize and flips".
The official code's linear evaluation (train_mode=finetune, fine_tune_after_block=4) preprocesses its training
images the same way. linear.py's `linear_eval` trains on features of the unaugmented images instead, extracted
once: one forward pass over the training split rather than one per epoch. `eval.linear_augment` chooses.

Everything but the inputs is linear_eval's: the head (`linear_classifier`, its weights drawn with the run's seed),
SGD with Nesterov momentum and a per-step cosine, each epoch's batches (`epoch_batches`, seed + 1), the accuracy on
features of the unaugmented test images. So with an `augment` that only normalises, the numbers are linear_eval's
(tested). The encoder runs in eval mode (BatchNorm reads its running statistics and never updates them) without
autograd, and is checked unchanged bit for bit at the end. On the streamed data path each crop is drawn on the
original image, as in pretraining and fine-tuning (finetune.py says how an unreadable image is handled).
Progress is kept as a fine-tuning's (finetune.py's `Progress`, saved at epoch ends), so that 90 epochs over
ImageNet go on after a job's time limit from the last epoch saved.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from simclr_core.evaluate.features import autocast, eval_mode, labelled_features, module_device
from simclr_core.evaluate.finetune import Augment, Progress, restore_training_state, training_state
from simclr_core.evaluate.frozen import require_unchanged, snapshot_state
from simclr_core.evaluate.inputs import is_image_stream
from simclr_core.evaluate.linear import (MOMENTUM, cosine_lr, epoch_batches, linear_classifier, linear_scores,
                                         require_linear_settings, sgd_nesterov, steps_per_epoch)
from simclr_core.validation import ConfigError


def linear_eval_augmented(encoder: nn.Module, train_images: Tensor, train_labels: Tensor, test_images: Tensor,
                          test_labels: Tensor, *, augment: Augment, mean: Sequence[float], std: Sequence[float],
                          num_classes: int, epochs: int = 90, batch_size: int = 256, lr: float = 0.1,
                          weight_decay: float = 0.0, feature_bn: bool = False, seed: int = 0,
                          momentum: float = MOMENTUM, extract_batch_size: int = 512,
                          device: torch.device | str | None = None, autocast_dtype: torch.dtype | None = None,
                          channels_last: bool = False, mean_per_class: bool = False,
                          progress: Progress | None = None) -> dict[str, float]:
    """Linear-evaluation accuracy (percent) of the frozen encoder, its classifier trained on `augment`ed views:
    linear_eval's metrics ({"linear_top1", "linear_top5"}, and "linear_mean_per_class_acc" with
    ``mean_per_class``). ``augment(uint8 batch on the device, or (streamed) a list of originals, generator) -> float
    batch`` is the network input, normalised by the callable itself; ``progress``: resume from its state, and save
    the state at epoch ends where it is due."""
    require_linear_settings(train_images, train_labels, test_images, test_labels, mean=mean, std=std,
                            num_classes=num_classes, epochs=epochs, batch_size=batch_size, lr=lr,
                            weight_decay=weight_decay, feature_bn=feature_bn, seed=seed, momentum=momentum,
                            extract_batch_size=extract_batch_size, autocast_dtype=autocast_dtype)
    if not callable(augment):
        raise ConfigError(f"augment={augment!r} must be a callable (uint8 batch, generator) -> float batch")

    device = module_device(encoder) if device is None else torch.device(device)
    before = snapshot_state(encoder)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    count, side = train_images.shape[0], train_images.shape[-1]
    streamed = is_image_stream(train_images)
    # Every training image: a uint8 (N, C, S, S) tensor, or (streamed) their originals, decoded batch by batch, each
    # batch with the labels of the images it holds.
    images = train_images.originals(torch.arange(count)) if streamed else train_images
    labels = train_labels.to(device, torch.long)

    with eval_mode(encoder), torch.no_grad():                           # probe the width D of h
        feature_dim = encoder(torch.zeros(1, train_images.shape[1], side, side, device=device)).shape[1]
    head = linear_classifier(feature_dim, num_classes, feature_bn=feature_bn,
                             generator=torch.Generator().manual_seed(seed)).to(device)
    optimizer = sgd_nesterov(head, lr=lr, weight_decay=weight_decay, momentum=momentum)
    scaler = torch.amp.GradScaler(device.type, enabled=False)          # the head trains in float32
    shuffle_gen = torch.Generator().manual_seed(seed + 1)
    augment_gen = torch.Generator().manual_seed(seed + 3)

    per_epoch = steps_per_epoch(count, batch_size)
    total_steps = epochs * per_epoch
    saved = progress.load() if progress is not None else None
    start_epoch = 0 if saved is None else restore_training_state(saved, epochs, per_epoch, head, optimizer, scaler,
                                                                 shuffle_gen, augment_gen)
    step = start_epoch * per_epoch
    head.train()
    with eval_mode(encoder):
        for epoch in range(start_epoch, epochs):
            order = epoch_batches(count, batch_size, shuffle_gen)
            batches = images.batches(order) if streamed else (
                (images[idx.to(images.device)].to(device, non_blocking=True), labels[idx.to(device)]) for idx in order)
            for batch, batch_labels in batches:
                x = augment(batch, augment_gen).contiguous(memory_format=memory_format)
                with torch.no_grad(), autocast(device, autocast_dtype):
                    features = encoder(x)
                for group in optimizer.param_groups:
                    group["lr"] = cosine_lr(step, total_steps, lr)
                loss = F.cross_entropy(head(features.float()), batch_labels.to(device, non_blocking=True))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
            if progress is not None and epoch + 1 < epochs and progress.due():
                progress.save(training_state(epoch + 1, step, head, optimizer, scaler, shuffle_gen, augment_gen))
    head.eval()

    test_features, test_labels = labelled_features(encoder, test_images, test_labels, mean=mean, std=std,
                                                   batch_size=extract_batch_size, device=device,
                                                   autocast_dtype=autocast_dtype, channels_last=channels_last)
    with torch.no_grad():
        logits = head(test_features)                                    # (M, C)
    require_unchanged(encoder, before, during="linear evaluation on augmented views")
    return linear_scores(logits, test_labels, mean_per_class=mean_per_class)


__all__ = ["linear_eval_augmented"]
