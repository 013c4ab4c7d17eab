"""Optimisers (LARS and the baselines the paper compares), parameter groups, and learning-rate schedules."""
from simclr_core.optim.factory import OPTIMIZERS, build_optimizer
from simclr_core.optim.groups import NORM_LAYERS, param_groups
from simclr_core.optim.lars import LARS
from simclr_core.optim.schedules import LR_SCALINGS, scaled_lr, set_lr, warmup_cosine

__all__ = ["OPTIMIZERS", "LARS", "LR_SCALINGS", "NORM_LAYERS", "build_optimizer", "param_groups",
           "scaled_lr", "set_lr", "warmup_cosine"]
