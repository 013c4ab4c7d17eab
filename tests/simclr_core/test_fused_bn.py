"""The fused BatchNorm [+ residual] [+ ReLU] of fused_bn.py / native_bn.cpp against nn.BatchNorm2d in float64,
its fallbacks to the eager module, and ResNets with and without it."""
import copy
import shutil

import pytest
import torch
from torch import nn

from simclr_core.distributed import GlobalBatchNorm
from simclr_core.models import fused_bn
from simclr_core.models.encoders import create_encoder
from simclr_core.models.fused_bn import batch_norm_act

CL = torch.channels_last


@pytest.fixture(scope="module")
def kernels():
    compiled = fused_bn.kernels()
    if compiled is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler here: the encoders run eager BatchNorm")
    assert compiled is not None, "g++ is here, yet the fused BatchNorm kernels did not build"
    return compiled


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_bn(channels: int, seed: int, momentum: float | None = 0.1) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels, momentum=momentum)
    g = gen(seed)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(channels, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(channels, generator=g))
        bn.running_mean.copy_(torch.randn(channels, generator=g))
        bn.running_var.copy_(torch.rand(channels, generator=g) + 0.5)
    return bn


def reference(bn: nn.BatchNorm2d, x: torch.Tensor, residual: torch.Tensor | None, relu: bool) -> torch.Tensor:
    out = bn(x)
    if residual is not None:
        out = out + residual
    return torch.relu(out) if relu else out


@pytest.mark.parametrize("channels", [16, 20])                  # 20: a channel count off the vector width
@pytest.mark.parametrize("with_residual, relu", [(False, True), (True, True), (True, False), (False, False)])
def test_fused_float32_equals_float64_batch_norm_forward_backward_and_running_stats(
        kernels, channels, with_residual, relu):
    g = gen(channels)
    # |mean| >> std: a textbook E[x^2] - E[x]^2 in float32 would cancel here
    x = (torch.randn(6, channels, 5, 7, generator=g) * 0.5 + 40.0).contiguous(memory_format=CL).requires_grad_()
    residual = (torch.randn(6, channels, 5, 7, generator=g).contiguous(memory_format=CL).requires_grad_()
                if with_residual else None)
    grad = torch.randn(6, channels, 5, 7, generator=g)
    bn = random_bn(channels, seed=1)
    bn64 = copy.deepcopy(bn).double()

    y = batch_norm_act(bn, x, residual, relu=relu)
    y.backward(grad)
    x64 = x.detach().double().requires_grad_()
    r64 = residual.detach().double().requires_grad_() if with_residual else None
    y64 = reference(bn64, x64, r64, relu)
    y64.backward(grad.double())

    assert y.dtype == torch.float32 and y.is_contiguous(memory_format=CL)
    torch.testing.assert_close(y.double(), y64, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(x.grad.double(), x64.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(bn.weight.grad.double(), bn64.weight.grad, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(bn.bias.grad.double(), bn64.bias.grad, atol=1e-4, rtol=1e-5)
    if with_residual:
        torch.testing.assert_close(residual.grad.double(), r64.grad, atol=1e-6, rtol=0)
    torch.testing.assert_close(bn.running_mean.double(), bn64.running_mean, atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(bn.running_var.double(), bn64.running_var, atol=1e-5, rtol=1e-6)
    assert int(bn.num_batches_tracked) == int(bn64.num_batches_tracked) == 1


def test_momentum_none_keeps_the_cumulative_average_as_the_module_does(kernels):
    bn = random_bn(16, seed=2, momentum=None)
    eager = copy.deepcopy(bn)
    for step in range(3):
        x = torch.randn(4, 16, 3, 3, generator=gen(10 + step)).contiguous(memory_format=CL)
        batch_norm_act(bn, x)
        eager(x)
    torch.testing.assert_close(bn.running_mean, eager.running_mean, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(bn.running_var, eager.running_var, atol=1e-6, rtol=1e-6)
    assert int(bn.num_batches_tracked) == 3


def test_fused_bfloat16_is_float64_batch_norm_rounded_once(kernels):
    x = torch.randn(8, 32, 6, 6, generator=gen(3)).to(torch.bfloat16).contiguous(memory_format=CL)
    residual = torch.randn(8, 32, 6, 6, generator=gen(4)).to(torch.bfloat16).contiguous(memory_format=CL)
    bn = random_bn(32, seed=5)
    expected = reference(copy.deepcopy(bn).double(), x.double(), residual.double(), relu=True)
    y = batch_norm_act(bn, x, residual)
    assert y.dtype == torch.bfloat16 and y.is_contiguous(memory_format=CL)
    # one rounding to bfloat16 (8 bits of mantissa): within half a unit in the last place, plus float32 slack
    assert ((y.double() - expected).abs() <= expected.abs() * 2.0**-8 + 1e-5).all()


def test_backward_in_bfloat16_matches_the_eager_module_within_bfloat16_precision(kernels):
    x = torch.randn(8, 16, 6, 6, generator=gen(6)).to(torch.bfloat16).contiguous(memory_format=CL)
    grad = torch.randn(8, 16, 6, 6, generator=gen(7)).to(torch.bfloat16)
    results = []
    for fused in (True, False):
        bn = random_bn(16, seed=8)
        xi = x.clone().requires_grad_()
        y = batch_norm_act(bn, xi) if fused else torch.relu(bn(xi))
        y.backward(grad)
        results.append((xi.grad.float(), bn.weight.grad, bn.bias.grad))
    for fused, eager in zip(*results):
        torch.testing.assert_close(fused, eager, atol=0.05 * eager.abs().max().item(), rtol=0.02)


class RefusingKernels:
    """Stands in for the compiled module where the fused path must not run."""

    def bn_act_forward(self, *args):
        raise AssertionError("the fused kernel ran where the eager module should")


@pytest.mark.parametrize("case", ["eval", "contiguous", "global_bn", "float64", "no_running_stats"])
def test_cases_the_kernels_do_not_cover_run_the_eager_module_unchanged(monkeypatch, case):
    monkeypatch.setattr(fused_bn, "kernels", lambda: RefusingKernels())
    bn = random_bn(8, seed=9)
    x = torch.randn(4, 8, 5, 5, generator=gen(10))
    if case == "eval":
        bn.eval()
    if case == "global_bn":
        bn = GlobalBatchNorm(8)
    if case == "no_running_stats":
        bn = nn.BatchNorm2d(8, track_running_stats=False)
    if case == "float64":
        bn, x = bn.double(), x.double()
    if case != "contiguous":
        x = x.contiguous(memory_format=CL)
    residual = torch.randn_like(x)
    expected = torch.relu(copy.deepcopy(bn)(x) + residual)
    torch.testing.assert_close(batch_norm_act(bn, x, residual), expected, atol=0, rtol=0)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_encoders_compute_the_same_features_gradients_and_statistics_with_and_without_the_kernels(
        kernels, monkeypatch, name):
    torch.manual_seed(0)
    fused = create_encoder(name, width=0.25, stem="cifar").to(memory_format=CL)
    eager = copy.deepcopy(fused)
    x = torch.randn(16, 3, 16, 16, generator=gen(11)).contiguous(memory_format=CL)
    h = fused(x)
    h.square().sum().backward()
    monkeypatch.setattr(fused_bn, "kernels", lambda: None)
    h_eager = eager(x)
    h_eager.square().sum().backward()

    torch.testing.assert_close(h, h_eager, atol=1e-4, rtol=1e-4)
    for (pname, p), q in zip(fused.named_parameters(), eager.parameters()):
        scale = q.grad.abs().max().item()
        torch.testing.assert_close(p.grad, q.grad, atol=2e-3 * scale, rtol=0, msg=lambda m: f"{pname}: {m}")
    for a, b in zip(fused.buffers(), eager.buffers()):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_the_kernels_refuse_bad_inputs_naming_what_they_expect(kernels):
    w, b = torch.ones(4), torch.zeros(4)
    x64 = torch.randn(2, 4, 3, 3, dtype=torch.float64).contiguous(memory_format=CL)
    with pytest.raises(RuntimeError, match="must be float32 or bfloat16"):
        kernels.bn_act_forward(x64, w, b, None, 1e-5, True)
    with pytest.raises(RuntimeError, match="x must be a channels_last CPU tensor"):
        kernels.bn_act_forward(torch.randn(2, 4, 3, 3), w, b, None, 1e-5, True)
    with pytest.raises(RuntimeError, match="weight must be a contiguous float32 CPU vector of 4 values"):
        kernels.bn_act_forward(x64.float(), torch.ones(5), b, None, 1e-5, True)


def test_the_switch_turns_the_kernels_off_and_names_its_values(monkeypatch):
    fused_bn.kernels.cache_clear()
    try:
        monkeypatch.setenv(fused_bn.SWITCH, "0")
        assert fused_bn.kernels() is None
        fused_bn.kernels.cache_clear()
        monkeypatch.setenv(fused_bn.SWITCH, "on")
        with pytest.raises(ValueError, match=r"SIMCLR_NATIVE_BN must be 0 .* or 1 .*, got 'on'"):
            fused_bn.kernels()
    finally:
        fused_bn.kernels.cache_clear()
