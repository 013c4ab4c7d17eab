"""LARS against hand computations and a loop transcription of the official TF optimiser; param_groups."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from simclr_core.optim import LARS, param_groups, set_lr
from simclr_core.validation import ConfigError

MOMENTUM, WEIGHT_DECAY, TRUST = 0.9, 0.1, 1e-3


def _tiny_model() -> nn.Sequential:
    """Linear(2, 2) + BatchNorm1d(2) in float64 with round-number parameters."""
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)).double()
    lin, bn = model
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 4.0]], dtype=torch.float64))
        lin.bias.copy_(torch.tensor([1.0, -1.0], dtype=torch.float64))
        bn.weight.copy_(torch.tensor([2.0, 0.5], dtype=torch.float64))
        bn.bias.copy_(torch.tensor([0.1, -0.2], dtype=torch.float64))
    return model


def _set_grads(model: nn.Module, grads: list[list]) -> None:
    for p, g in zip(model.parameters(), grads):
        p.grad = torch.tensor(g, dtype=torch.float64)


def _close(actual: torch.Tensor, expected) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)


def test_two_steps_match_hand_computation():
    model = _tiny_model()
    lin, bn = model
    opt = LARS(param_groups(model, WEIGHT_DECAY), lr=0.6, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY,
               trust_coefficient=TRUST)

    # ---- step 1, lr 0.6, zero momentum buffers --------------------------------------------------
    _set_grads(model, [[[0.6, 0.0], [0.0, 0.8]], [0.5, 0.25], [0.1, -0.2], [1.0, 0.0]])
    opt.step()
    # weight: g + wd*w = [[0.9, 0], [0, 1.2]]; ||w|| = 5, ||g|| = 1.5 -> trust = 1e-3 * 5 / 1.5 = 1/300
    #         scaled lr = 0.6 / 300 = 0.002; v = 0.002 * g = [[0.0018, 0], [0, 0.0024]]; w - v:
    _close(lin.weight, [[2.9982, 0.0], [0.0, 3.9976]])
    # excluded (bias, BN gamma/beta): no decay, trust 1 -> v = 0.6 * g; p - v
    _close(lin.bias, [1.0 - 0.3, -1.0 - 0.15])
    _close(bn.weight, [2.0 - 0.06, 0.5 + 0.12])
    _close(bn.bias, [0.1 - 0.6, -0.2])

    # ---- step 2, lr 0.3: the old velocity decays by 0.9, the new gradient enters scaled by the new lr ----
    set_lr(opt, 0.3)
    _set_grads(model, [[[0.0, 0.3], [0.4, 0.0]], [0.1, 0.1], [0.0, 0.0], [0.0, 0.0]])
    opt.step()
    g = [[0.0 + 0.1 * 2.9982, 0.3], [0.4, 0.0 + 0.1 * 3.9976]]
    w_norm = math.sqrt(2.9982 ** 2 + 3.9976 ** 2)
    g_norm = math.sqrt(g[0][0] ** 2 + g[0][1] ** 2 + g[1][0] ** 2 + g[1][1] ** 2)
    step2 = 0.3 * 1e-3 * w_norm / g_norm
    v = [[0.9 * 0.0018 + step2 * g[0][0], step2 * g[0][1]], [step2 * g[1][0], 0.9 * 0.0024 + step2 * g[1][1]]]
    _close(lin.weight, [[2.9982 - v[0][0], -v[0][1]], [-v[1][0], 3.9976 - v[1][1]]])
    # bias: v = 0.9 * [0.3, 0.15] + 0.3 * [0.1, 0.1] = [0.3, 0.165]
    # (torch.optim.SGD would apply 0.3 * (0.9 * [0.5, 0.25] + [0.1, 0.1]) = [0.165, 0.0975] instead)
    _close(lin.bias, [0.7 - 0.3, -1.15 - 0.165])
    # BN with zero gradient still coasts on its velocity: v = 0.9 * [0.06, -0.12], 0.9 * [0.6, 0]
    _close(bn.weight, [1.94 - 0.054, 0.62 + 0.108])
    _close(bn.bias, [-0.5 - 0.54, -0.2])


def _official_lars_reference(params, grads, buffers, excluded, lr):
    """Loop transcription of google-research/simclr lars_optimizer.py (classic momentum, no Nesterov)."""
    for i, (w, g) in enumerate(zip(params, grads)):
        if not excluded[i]:
            g = g + WEIGHT_DECAY * w
        trust = 1.0
        if not excluded[i]:
            w_norm, g_norm = float(w.norm()), float(g.norm())
            trust = TRUST * w_norm / g_norm if w_norm > 0 and g_norm > 0 else 1.0
        buffers[i] = MOMENTUM * buffers[i] + lr * trust * g
        params[i] = w - buffers[i]


def test_matches_official_transcription_on_a_conv_net_with_changing_lr():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1, bias=False),
                          nn.Flatten(), nn.LazyLinear(3)).double()
    model(torch.randn(2, 3, 5, 5, dtype=torch.float64))  # materialise the lazy layer
    excluded_ids = {id(p) for p in param_groups(model, WEIGHT_DECAY)[1]["params"]}
    ref_params = [p.detach().clone() for p in model.parameters()]
    excluded = [id(p) in excluded_ids for p in model.parameters()]
    ref_buffers = [torch.zeros_like(p) for p in ref_params]

    opt = LARS(param_groups(model, WEIGHT_DECAY), lr=1.0, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY,
               trust_coefficient=TRUST)
    for lr in (0.0, 2.0, 0.7, 4.8):
        grads = [torch.randn_like(p) for p in ref_params]
        for p, g in zip(model.parameters(), grads):
            p.grad = g.clone()
        set_lr(opt, lr)
        opt.step()
        _official_lars_reference(ref_params, grads, ref_buffers, excluded, lr)
        for p, ref in zip(model.parameters(), ref_params):
            torch.testing.assert_close(p.detach(), ref, rtol=1e-12, atol=1e-14)
    assert any(excluded) and not all(excluded)


def _run(model: nn.Module, weight_decay: float, grads: list[list[torch.Tensor]], lr: float = 0.5) -> None:
    opt = LARS(param_groups(model, weight_decay), lr=lr, momentum=MOMENTUM, weight_decay=weight_decay)
    for step_grads in grads:
        for p, g in zip(model.parameters(), step_grads):
            p.grad = g.clone()
        opt.step()


def test_bias_and_bn_get_plain_momentum_sgd_and_ignore_weight_decay():
    torch.manual_seed(1)
    base = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2)).double()
    grads = [[torch.randn_like(p) for p in base.parameters()] for _ in range(3)]
    models = {wd: copy.deepcopy(base) for wd in (0.0, 0.5)}
    for wd, model in models.items():
        _run(model, wd, grads)

    sgd_model = copy.deepcopy(base)
    excluded = param_groups(sgd_model, 0.0)[1]["params"]
    sgd = torch.optim.SGD(excluded, lr=0.5, momentum=MOMENTUM)  # equals LARS's form at constant lr
    for step_grads in grads:
        for p, g in zip(sgd_model.parameters(), step_grads):
            p.grad = g.clone()
        sgd.step()

    names = dict(base.named_parameters())
    excluded_names = {n for n, p in names.items() if p.ndim == 1}
    assert excluded_names == {"0.bias", "1.weight", "1.bias", "2.bias"}
    for name in names:
        no_decay = dict(models[0.0].named_parameters())[name]
        decay = dict(models[0.5].named_parameters())[name]
        if name in excluded_names:
            torch.testing.assert_close(no_decay, decay, rtol=0, atol=0)
            torch.testing.assert_close(decay, dict(sgd_model.named_parameters())[name], rtol=1e-12, atol=1e-14)
        else:
            assert not torch.allclose(no_decay, decay)


def test_excluded_group_ignores_its_own_weight_decay_entry():
    p = nn.Parameter(torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64))
    p.grad = torch.tensor([[0.1, 0.2], [0.3, 0.4]], dtype=torch.float64)
    LARS([{"params": [p], "lars_exclude": True, "weight_decay": 10.0}], lr=0.5).step()
    _close(p.detach(), [[0.95, 1.9], [2.85, 3.8]])  # p - 0.5 * g: no decay, no trust ratio


def test_weight_update_size_is_set_by_the_trust_ratio_not_the_gradient_scale():
    torch.manual_seed(2)
    w0 = torch.randn(5, 7, dtype=torch.float64)
    g = torch.randn(5, 7, dtype=torch.float64)
    updates = []
    for scale in (1.0, 1e3):
        w = nn.Parameter(w0.clone())
        w.grad = g * scale
        LARS([w], lr=2.0, momentum=MOMENTUM, trust_coefficient=TRUST).step()
        updates.append(w0 - w.detach())
    torch.testing.assert_close(updates[0], updates[1], rtol=1e-10, atol=0)
    # ||update|| = lr * trust * ||g|| = lr * tc * ||w||, and it points along g.
    torch.testing.assert_close(updates[0].norm(), 2.0 * TRUST * w0.norm(), rtol=1e-12, atol=0)
    torch.testing.assert_close(updates[0] / updates[0].norm(), g / g.norm(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("w, g, expected", [
    ([0.0, 0.0, 0.0], [1.0, -2.0, 0.5], [-0.5, 1.0, -0.25]),  # ||w|| = 0 -> trust 1 -> w - lr * g
    ([3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [3.0, 4.0, 0.0]),      # ||g|| = 0 (no decay) -> trust 1, no move
    ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),      # both zero
])
def test_zero_norms_fall_back_to_trust_one_without_nan(w, g, expected):
    # A 2-D parameter so it lands in the adapted group of a LARS with weight decay.
    p = nn.Parameter(torch.tensor([w], dtype=torch.float64))
    p.grad = torch.tensor([g], dtype=torch.float64)
    opt = LARS([{"params": [p], "weight_decay": 0.0 if any(w) else 0.3}], lr=0.5, trust_coefficient=TRUST)
    opt.step()
    _close(p.detach(), [expected])
    assert torch.isfinite(opt.state[p]["momentum_buffer"]).all()


def test_params_without_grad_are_left_alone_and_grads_are_not_modified():
    a = nn.Parameter(torch.ones(2, 2))
    b = nn.Parameter(torch.ones(2, 2))
    a.grad = torch.full((2, 2), 0.5)
    opt = LARS([a, b], lr=1.0, weight_decay=0.1)
    opt.step()
    assert torch.equal(b.detach(), torch.ones(2, 2)) and b not in opt.state
    assert not torch.equal(a.detach(), torch.ones(2, 2))
    assert torch.equal(a.grad, torch.full((2, 2), 0.5))  # weight decay was added to a copy


def test_mixed_dtypes_in_one_group_match_separate_optimisers():
    torch.manual_seed(3)
    tensors = [torch.randn(3, 4), torch.randn(4, 2, dtype=torch.float64)]
    grads = [torch.randn_like(t) for t in tensors]
    together = [nn.Parameter(t.clone()) for t in tensors]
    for p, g in zip(together, grads):
        p.grad = g.clone()
    LARS(together, lr=1.0, weight_decay=0.1).step()
    for t, g, p in zip(tensors, grads, together):
        alone = nn.Parameter(t.clone())
        alone.grad = g.clone()
        LARS([alone], lr=1.0, weight_decay=0.1).step()
        torch.testing.assert_close(p, alone, rtol=0, atol=0)


def test_state_dict_resume_continues_identically():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    grads = [[torch.randn_like(p) for p in model.parameters()] for _ in range(3)]
    resumed = copy.deepcopy(model)
    opt = LARS(param_groups(model, 1e-2), lr=0.3)
    for step_grads in grads[:2]:
        for p, g in zip(model.parameters(), step_grads):
            p.grad = g.clone()
        opt.step()
    resumed.load_state_dict(model.state_dict())
    opt2 = LARS(param_groups(resumed, 1e-2), lr=0.3)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))  # as through a checkpoint file: torch aliases otherwise
    for m, o in ((model, opt), (resumed, opt2)):
        for p, g in zip(m.parameters(), grads[2]):
            p.grad = g.clone()
        o.step()
    for p, q in zip(model.parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


@pytest.mark.parametrize("kwargs", [dict(lr=-0.1), dict(momentum=1.0), dict(weight_decay=-1e-6),
                                    dict(trust_coefficient=0.0), dict(eps=-1.0)])
def test_bad_hyperparameters_raise(kwargs):
    args = dict(lr=0.1) | kwargs
    with pytest.raises(ConfigError, match=repr(next(iter(kwargs.values())))):
        LARS([nn.Parameter(torch.ones(2, 2))], **args)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_without_host_syncs():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Linear(8, 4))
    grads = [[torch.randn_like(p) for p in model.parameters()] for _ in range(2)]
    results = []
    for device in ("cpu", "cuda"):
        m = copy.deepcopy(model).to(device)
        opt = LARS(param_groups(m, 1e-3), lr=0.5)
        for step_grads in grads:
            for p, g in zip(m.parameters(), step_grads):
                p.grad = g.to(device)
            torch.cuda.set_sync_debug_mode("error" if device == "cuda" else "default")
            try:
                opt.step()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        results.append([p.detach().cpu() for p in m.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


# ---- param_groups ---------------------------------------------------------------------------------
def test_param_groups_splits_weights_from_biases_and_norm_layers():
    conv, conv_nb = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 1, bias=False)
    bn, gn = nn.BatchNorm2d(4), nn.GroupNorm(2, 4)
    fc, ln2d = nn.Linear(16, 6), nn.LayerNorm([2, 3])  # a norm layer with a 2-D weight: excluded by type
    tied = nn.Linear(16, 6, bias=False)
    tied.weight = fc.weight  # shared parameter: must appear once
    model = nn.ModuleList([conv, bn, conv_nb, gn, fc, ln2d, tied])

    adapted, excluded = param_groups(model, 1e-6)
    assert (adapted["name"], adapted["weight_decay"], adapted["lars_exclude"]) == ("adapted", 1e-6, False)
    assert (excluded["name"], excluded["weight_decay"], excluded["lars_exclude"]) == ("excluded", 0.0, True)
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    assert ids(adapted["params"]) == ids([conv.weight, conv_nb.weight, fc.weight])
    assert ids(excluded["params"]) == ids([conv.bias, bn.weight, bn.bias, gn.weight, gn.bias, fc.bias,
                                           ln2d.weight, ln2d.bias])
    assert len(adapted["params"]) + len(excluded["params"]) == len(list(model.parameters())) == 11


def test_param_groups_keeps_both_groups_for_a_bias_free_model():
    adapted, excluded = param_groups(nn.Linear(3, 2, bias=False), 0.1)
    assert len(adapted["params"]) == 1 and excluded["params"] == []
