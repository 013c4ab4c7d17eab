"""Two real gloo processes against one process on the whole batch (dist_harness.py runs the processes).

Contract checked (simclr_core/distributed.py): with L the single-process loss on the whole batch and L_r the
loss of process r on its share, mean_r L_r = L, and the gradient process r receives for its own inputs is
d(sum_s L_s)/d(its inputs) = W dL/d(its inputs) (W = 2); DDP's average of parameter gradients is dL/dtheta.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from simclr_core import distributed
from simclr_core.losses import LOSSES, contrastive_stats, nt_xent

pytestmark = pytest.mark.distributed

HARNESS = Path(__file__).with_name("dist_harness.py")
REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("dist_harness", HARNESS)
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)

W = 2


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Inputs for the whole batch, and each rank's results: [rank0, rank1]."""
    tmp = tmp_path_factory.mktemp("gloo")
    inputs = harness.make_inputs(world=W)
    torch.save(inputs, tmp / "inputs.pt")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(HARNESS), str(r), str(W), str(tmp / "store"),
                               str(tmp / "inputs.pt"), str(tmp / f"rank{r}.pt")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(W)]
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=120)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    if any(p.returncode for p in procs):
        pytest.fail("harness failed:\n" + "\n".join(f"--- rank {r}:\n{log}" for r, log in enumerate(logs)))
    return inputs, [torch.load(tmp / f"rank{r}.pt") for r in range(W)]


def _share(t: torch.Tensor, r: int, n: int) -> torch.Tensor:
    return t[r * n:(r + 1) * n]


def _close(actual, expected, rtol=1e-10, atol=1e-12):
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)


def test_process_facts(run):
    _, ranks = run
    assert [out["facts"] for out in ranks] == [(True, 2, 0), (True, 2, 1)]
    assert (distributed.is_distributed(), distributed.world_size(), distributed.rank()) == (False, 1, 0)


@pytest.mark.parametrize("case", harness.LOSS_CASES, ids=lambda c: "-".join(map(str, c)))
def test_loss_and_gradients_equal_one_process_on_the_whole_batch(run, case):
    inputs, ranks = run
    kind, semi_hard, normalize, _ = case
    z1, z2 = (inputs[k].clone().requires_grad_() for k in ("z1", "z2"))
    loss = LOSSES[kind](z1, z2, temperature=harness.TEMPERATURE, normalize=normalize, semi_hard=semi_hard)
    g1, g2 = torch.autograd.grad(loss, (z1, z2))
    per_rank = [out[("loss",) + tuple(case)] for out in ranks]
    _close(sum(loss_r for loss_r, _, _ in per_rank) / W, loss.detach())
    for r, (_, g1_r, g2_r) in enumerate(per_rank):
        # each rank's gradient is the sum over ranks of d L_s / d z_r = W * d L / d z_r
        _close(g1_r, W * _share(g1, r, inputs["n"]))
        _close(g2_r, W * _share(g2, r, inputs["n"]))


def test_contrastive_stats_average_to_the_whole_batch(run):
    inputs, ranks = run
    whole = contrastive_stats(inputs["z1"], inputs["z2"], temperature=harness.TEMPERATURE)
    for key in ("contrastive_acc", "entropy"):
        _close(sum(out["stats"][key] for out in ranks) / W, whole[key])


def test_all_gather_with_grad_forward_and_backward(run):
    inputs, ranks = run
    x, w = inputs["gather_x"], inputs["gather_w"]                 # (W, 3, 2), (W, W*3, 2)
    for r, out in enumerate(ranks):
        gathered, grad = out["gather"]
        assert torch.equal(gathered, torch.cat(list(x)))
        # loss_s = <gathered, w_s>: d(sum_s loss_s) / d x_r = sum_s w_s[slice r]
        _close(grad, w[:, r * 3:(r + 1) * 3].sum(0))
    single = torch.randn(3, 2)
    assert distributed.all_gather_with_grad(single) is single    # no process group: identity


def _reference_bn(inputs):
    bn = nn.BatchNorm2d(3).double()
    with torch.no_grad():
        bn.weight.copy_(inputs["bn_weight"])
        bn.bias.copy_(inputs["bn_bias"])
    x = inputs["bn_x"][0].clone().requires_grad_()
    y = bn(x)
    (y * inputs["bn_upstream"]).sum().backward()
    bn(inputs["bn_x"][1])
    return bn, x, y


def test_global_batchnorm_equals_batchnorm_over_the_whole_batch(run):
    inputs, ranks = run
    bn, x, y = _reference_bn(inputs)
    n = inputs["n"]
    for r, out in enumerate(ranks):
        got = out["bn"]
        _close(got["y"], _share(y.detach(), r, n))
        # loss = sum_r loss_r with loss_r = <y_r, upstream_r>: each rank's input gradient is its slice
        _close(got["x_grad"], _share(x.grad, r, n))
        # after two steps on different batches: momentum 0.1, unbiased running variance
        _close(got["running_mean"], bn.running_mean)
        _close(got["running_var"], bn.running_var)
        assert got["batches"].item() == 2
        _close(got["eval_y"], bn.eval()(_share(inputs["bn_x"][0], r, n)).detach())
        bn.train()
    # parameters are per-rank copies: their gradients add up (DDP averages, and the mean loss halves them)
    _close(sum(out["bn"]["weight_grad"] for out in ranks), bn.weight.grad)
    _close(sum(out["bn"]["bias_grad"] for out in ranks), bn.bias.grad)


def test_global_batchnorm_1d_with_cumulative_average(run):
    inputs, ranks = run
    bn = nn.BatchNorm1d(5, momentum=None).double()
    x = inputs["bn1d_x"].clone().requires_grad_()
    y = bn(x)
    (y * inputs["bn1d_upstream"]).sum().backward()
    bn(inputs["bn1d_x"] * 2)
    for r, out in enumerate(ranks):
        _close(out["bn1d"]["y"], _share(y.detach(), r, inputs["n"]))
        _close(out["bn1d"]["x_grad"], _share(x.grad, r, inputs["n"]))
        _close(out["bn1d"]["running_mean"], bn.running_mean)
        _close(out["bn1d"]["running_var"], bn.running_var)


def test_global_batchnorm_bfloat16_under_autocast_keeps_float32_statistics(run):
    inputs, ranks = run
    x = inputs["bn_x"][0].to(torch.bfloat16).float()     # the values the ranks saw
    bn = nn.BatchNorm2d(3)
    y = bn(x)
    for r, out in enumerate(ranks):
        assert out["bn_bf16"]["y"].dtype == torch.bfloat16
        torch.testing.assert_close(out["bn_bf16"]["y"].float(), _share(y.detach(), r, inputs["n"]),
                                   rtol=1e-2, atol=2e-2)
        torch.testing.assert_close(out["bn_bf16"]["running_mean"], bn.running_mean, rtol=1e-5, atol=1e-6)


def test_convert_to_global_bn_swaps_every_batchnorm_and_syncs(run):
    inputs, ranks = run
    reference = harness.small_net()
    y = reference(inputs["images"][0]).detach()
    for r, out in enumerate(ranks):
        assert out["converted"].count("GlobalBatchNorm") == 3
        assert not {"BatchNorm1d", "BatchNorm2d", "ScaleOnlyBatchNorm1d"} & set(out["converted"])
        _close(out["converted_y"], _share(y, r, inputs["n"]))


def test_group_size_one_is_local_batchnorm_and_non_divisors_are_rejected(run):
    inputs, ranks = run
    for r, out in enumerate(ranks):
        assert out["group_of_one_sizes"] == [1, 1, 1]
        local = harness.small_net()(_share(inputs["images"][0], r, inputs["n"])).detach()
        _close(out["group_of_one_y"], local)
        assert "global_bn_group_size=3" in out["bad_group_size"] and "[1, 2]" in out["bad_group_size"]


def test_ddp_step_with_global_bn_and_nt_xent_equals_one_process(run):
    """The whole contract at once: DDP-averaged gradients of a BN net trained with NT-Xent are the
    single-process gradients on the whole batch."""
    inputs, ranks = run
    net = harness.small_net()
    z = net(torch.cat(list(inputs["images"])))
    loss = nt_xent(*z.chunk(2), temperature=harness.TEMPERATURE)
    loss.backward()
    _close(sum(out["ddp"][0] for out in ranks) / W, loss.detach())
    for out in ranks:
        grads = out["ddp"][1]
        for name, p in net.named_parameters():
            _close(grads[name], p.grad, rtol=1e-9, atol=1e-12)


def test_convert_without_process_group_keeps_module_math():
    """One process: every BN is replaced, weights and buffers are shared, outputs are plain BatchNorm's."""
    net = harness.small_net()
    bn_weight = net[1].weight
    x = torch.randn(4, 3, 6, 6, dtype=torch.float64)
    expected = harness.small_net()(x)
    converted = distributed.convert_to_global_bn(net, group_size=8)   # ignored with one process
    assert isinstance(converted[1], distributed.GlobalBatchNorm) and converted[1].weight is bn_weight
    assert isinstance(converted[6], distributed.GlobalBatchNorm)
    assert isinstance(converted[9], distributed.GlobalBatchNorm) and converted[9].bias is None
    _close(converted(x), expected)
    root = distributed.convert_to_global_bn(nn.BatchNorm1d(3))
    assert isinstance(root, distributed.GlobalBatchNorm)
