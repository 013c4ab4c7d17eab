"""Learning-rate scaling with batch size, and the warm-up + cosine schedule; pure functions of numbers.

Paper, Sec. 2.3 (default setting): "learning rate of 4.8 (= 0.3 x BatchSize/256) ... we use linear warmup
for the first 10 epochs, and decay the learning rate with the cosine decay schedule without restarts".
Appendix B.1 compares this with square-root scaling, LearningRate = 0.075 x sqrt(BatchSize), which is better
for small batches and few epochs. Both follow the official `model_util.learning_rate_schedule`.
"""
from __future__ import annotations

import math

import torch

from simclr_core.validation import require_choice, require_range

LR_SCALINGS = ("linear", "sqrt")
# The paper's base learning rate for each scaling rule.
DEFAULT_BASE_LR = {"linear": 0.3, "sqrt": 0.075}


def scaled_lr(batch_size: int, scaling: str, base_lr: float | None = None) -> float:
    """Peak learning rate for a global ``batch_size``: ``base_lr * B / 256`` (linear) or ``base_lr * sqrt(B)``.

    ``base_lr=None`` takes the paper's constant for the rule (0.3 linear, 0.075 sqrt); B=4096 gives 4.8 both ways.
    """
    require_choice("optim.lr_scaling", scaling, LR_SCALINGS)
    require_range("batch_size", batch_size, low=1)
    base = DEFAULT_BASE_LR[scaling] if base_lr is None else base_lr
    require_range("optim.base_lr", base, low=0, low_inclusive=False)
    return base * batch_size / 256 if scaling == "linear" else base * math.sqrt(batch_size)


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, peak_lr: float,
                  final_lr: float = 0.0) -> float:
    """Learning rate at optimiser step ``step`` (0-based) of a run of ``total_steps`` steps.

    Warm-up: ``peak_lr * step / warmup_steps`` for ``step < warmup_steps`` (so step 0 trains at lr 0, as in
    the official code). Then cosine decay, ``final + (peak - final) * (1 + cos(pi * t)) / 2`` with
    ``t = (step - warmup_steps) / (total_steps - warmup_steps)``: ``peak_lr`` at the end of warm-up,
    ``final_lr`` at ``total_steps`` and held there for any later step (tf.train.cosine_decay clamps the same
    way; the official code's ``final_lr`` is 0). With ``warmup_steps >= total_steps`` the ramp runs until
    ``total_steps`` and the lr is then ``final_lr``.
    """
    require_range("total_steps", total_steps, low=1)
    require_range("warmup_steps", warmup_steps, low=0)
    require_range("step", step, low=0)
    if step >= total_steps:
        return final_lr
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return final_lr + (peak_lr - final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Write ``lr`` into every param group (the train loop calls this once per step, before ``step()``)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
