"""Build the optimiser an `OptimConfig` names, always with biases and norm layers exempt from weight decay.

The official code offers `lars` (pre-training), `momentum` (Nesterov SGD, also the paper's linear-eval
optimiser, Appendix B) and `adam`; we add `adamw` (decoupled decay). Every one of them receives the two
groups of `param_groups`, so "no weight decay on biases and BatchNorm" holds whichever optimiser runs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from simclr_core.optim.groups import param_groups
from simclr_core.optim.lars import LARS
from simclr_core.validation import require_choice

if TYPE_CHECKING:  # config imports this package (validate, peak_lr); importing it back at run time would cycle
    from simclr_core.config import OptimConfig


def _lars(cfg: OptimConfig, groups: list[dict], lr: float) -> torch.optim.Optimizer:
    return LARS(groups, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                trust_coefficient=cfg.trust_coefficient)


def _sgd(cfg: OptimConfig, groups: list[dict], lr: float) -> torch.optim.Optimizer:
    # Nesterov as the official `momentum` optimizer (model_util.get_optimizer); torch refuses it at momentum 0.
    # weight_decay comes from each group (coupled L2, 0 for the excluded group).
    return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)


def _adam(cfg: OptimConfig, groups: list[dict], lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(groups, lr=lr)  # coupled L2 from each group's weight_decay


def _adamw(cfg: OptimConfig, groups: list[dict], lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=lr)  # decoupled decay from each group's weight_decay


_BUILDERS: dict[str, Callable[[OptimConfig, list[dict], float], torch.optim.Optimizer]] = {
    "lars": _lars, "sgd": _sgd, "adam": _adam, "adamw": _adamw,
}
OPTIMIZERS: tuple[str, ...] = tuple(_BUILDERS)


def build_optimizer(cfg: OptimConfig, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """The optimiser ``cfg.name`` over ``model``'s parameters at learning rate ``lr`` (the schedule's peak).

    Conv/linear weights get ``cfg.weight_decay``; biases and normalisation-layer parameters get none (and no
    LARS trust ratio). ``lr`` is only the initial value: the train loop overwrites it each step with `set_lr`.
    Raises ConfigError for a name outside OPTIMIZERS.
    """
    require_choice("optim.name", cfg.name, OPTIMIZERS)
    return _BUILDERS[cfg.name](cfg, param_groups(model, cfg.weight_decay), lr)
