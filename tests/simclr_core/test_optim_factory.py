"""build_optimizer: the right class per name, bias/BN exempt from weight decay for every optimiser."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from simclr_core.config import OptimConfig
from simclr_core.optim import LARS, OPTIMIZERS, build_optimizer
from simclr_core.validation import ConfigError

EXPECTED_CLASS = {"lars": LARS, "sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))


def test_optimizers_tuple():
    assert OPTIMIZERS == ("lars", "sgd", "adam", "adamw")


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_builds_the_named_class_with_lr_and_groups(name):
    model = _model()
    opt = build_optimizer(OptimConfig(name=name, weight_decay=1e-4), model, lr=0.7)
    assert type(opt) is EXPECTED_CLASS[name]
    adapted, excluded = opt.param_groups
    assert adapted["lr"] == excluded["lr"] == 0.7
    assert (adapted["weight_decay"], excluded["weight_decay"]) == (1e-4, 0.0)
    assert len(adapted["params"]) == 2 and len(excluded["params"]) == 4  # conv/linear weights vs the rest
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_weight_decay_moves_weights_but_never_biases_or_bn(name):
    # With zero gradients, only weight decay can move a parameter.
    model = _model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = build_optimizer(OptimConfig(name=name, weight_decay=0.5), model, lr=0.1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    decayed = {"0.weight", "3.weight"}  # conv and linear weights; BN's gamma "1.weight" is exempt
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), before[n]) == (n not in decayed), n


def test_lars_and_sgd_take_momentum_and_trust_coefficient_from_config():
    cfg = OptimConfig(name="lars", momentum=0.8, trust_coefficient=2e-3)
    group = build_optimizer(cfg, _model(), lr=1.0).param_groups[0]
    assert (group["momentum"], group["trust_coefficient"]) == (0.8, 2e-3)
    sgd = build_optimizer(OptimConfig(name="sgd", momentum=0.0), _model(), lr=1.0)  # Nesterov needs momentum
    assert (sgd.param_groups[0]["momentum"], sgd.param_groups[0]["nesterov"]) == (0.0, False)
    assert build_optimizer(OptimConfig(name="sgd"), _model(), lr=1.0).param_groups[0]["nesterov"] is True


def test_unknown_name_names_the_value_and_the_choices():
    with pytest.raises(ConfigError) as err:
        build_optimizer(OptimConfig(name="rmsprop"), _model(), lr=0.1)
    message = str(err.value)
    assert "'rmsprop'" in message and "optim.name" in message
    assert all(repr(name) in message for name in OPTIMIZERS)
