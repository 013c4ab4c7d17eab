"""Projection heads g(.) and the SimCLR model: shapes, the official layer layout, BN arithmetic, config wiring."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from simclr_core.config import EncoderConfig, HeadConfig
from simclr_core.models import (
    HEAD_KINDS,
    BatchNorm1dNoBias,
    SimCLRModel,
    build_model,
    head_output_dim,
    projection_head,
)
from simclr_core.models import simclr as simclr_module
from simclr_core.validation import ConfigError

IN_DIM, OUT_DIM = 64, 16


def _layout(head: nn.Module) -> list[tuple]:
    """One tuple per layer: ("linear", in, out, has_bias) | ("bn", features, has_scale, has_shift) | ("relu",)."""
    out = []
    for m in head:
        if isinstance(m, nn.Linear):
            out.append(("linear", m.in_features, m.out_features, m.bias is not None))
        elif isinstance(m, nn.BatchNorm1d):
            out.append(("bn", m.num_features, m.weight is not None, m.bias is not None))
        elif isinstance(m, nn.ReLU):
            out.append(("relu",))
        else:
            raise AssertionError(f"unexpected layer {m}")
    return out


def _randomize_bn(head: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in head.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.num_features, generator=g))


def _batch_norm_f64(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor | None, eps: float = 1e-5):
    """Textbook training-mode BN: biased batch variance, float64."""
    x = x.double()
    y = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + eps) * gamma.double()
    return y if beta is None else y + beta.double()


# ---- every kind ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", HEAD_KINDS)
def test_output_shape_is_head_output_dim(kind):
    torch.manual_seed(0)
    head = projection_head(kind, IN_DIM, OUT_DIM)
    z = head(torch.randn(8, IN_DIM))
    assert z.shape == (8, head_output_dim(kind, IN_DIM, OUT_DIM))
    assert head_output_dim(kind, IN_DIM, OUT_DIM) == (IN_DIM if kind == "none" else OUT_DIM)


def test_none_is_the_identity():
    head = projection_head("none", IN_DIM, OUT_DIM)
    assert isinstance(head, nn.Identity)
    h = torch.randn(4, IN_DIM)
    assert head(h) is h


@pytest.mark.parametrize("kind", HEAD_KINDS)
def test_bf16_autocast_forward_and_backward(kind):
    torch.manual_seed(0)
    head = projection_head(kind, IN_DIM, OUT_DIM)
    h = torch.randn(8, IN_DIM, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = head(h)
    z.float().square().sum().backward()
    assert torch.isfinite(z.float()).all() and torch.isfinite(h.grad).all()


# ---- the official layer layout (model_util.py linear_layer / projection_head) ----------------------
def test_linear_head_is_linear_without_bias_then_bn_without_shift():
    assert _layout(projection_head("linear", IN_DIM, OUT_DIM)) == [
        ("linear", IN_DIM, OUT_DIM, False),
        ("bn", OUT_DIM, True, False),
    ]


def test_nonlinear_head_places_bn_as_the_official_code():
    # Hidden: dense (no bias) -> BN(center=True) -> ReLU; output: dense (no bias) -> BN(center=False), no ReLU.
    assert _layout(projection_head("nonlinear", IN_DIM, OUT_DIM)) == [
        ("linear", IN_DIM, IN_DIM, False),
        ("bn", IN_DIM, True, True),
        ("relu",),
        ("linear", IN_DIM, OUT_DIM, False),
        ("bn", OUT_DIM, True, False),
    ]


def test_v2_head_has_two_hidden_layers_then_the_output_layer():
    assert _layout(projection_head("v2", IN_DIM, OUT_DIM, hidden_dim=32)) == [
        ("linear", IN_DIM, 32, False), ("bn", 32, True, True), ("relu",),
        ("linear", 32, 32, False), ("bn", 32, True, True), ("relu",),
        ("linear", 32, OUT_DIM, False), ("bn", OUT_DIM, True, False),
    ]


def test_hidden_dim_overrides_the_default_feature_width():
    layout = _layout(projection_head("nonlinear", IN_DIM, OUT_DIM, hidden_dim=48))
    assert layout[0] == ("linear", IN_DIM, 48, False) and layout[3] == ("linear", 48, OUT_DIM, False)


@pytest.mark.parametrize("kind", ["linear", "nonlinear", "v2"])
def test_linear_kernels_start_from_normal_with_std_0_01(kind):
    torch.manual_seed(0)
    head = projection_head(kind, 512, 256)
    for m in head:
        if isinstance(m, nn.Linear):
            assert m.weight.std().item() == pytest.approx(0.01, rel=0.03)
            assert m.weight.mean().abs().item() < 1e-3


# ---- arithmetic -------------------------------------------------------------------------------------
def test_nonlinear_head_matches_textbook_formula_in_training_mode():
    # z = BN2(W2 relu(BN1(W1 h))): the paper's W(2)σ(W(1)h) with the official BNs, computed in float64.
    torch.manual_seed(0)
    head = projection_head("nonlinear", IN_DIM, OUT_DIM).train()
    _randomize_bn(head)
    h = torch.randn(32, IN_DIM)
    w1, bn1, w2, bn2 = head[0].weight, head[1], head[3].weight, head[4]
    a = torch.relu(_batch_norm_f64(h.double() @ w1.double().T, bn1.weight, bn1.bias))
    expected = _batch_norm_f64(a @ w2.double().T, bn2.weight, None)
    torch.testing.assert_close(head(h).double(), expected, rtol=1e-4, atol=1e-4)


def test_batchnorm_without_shift_in_train_and_eval_mode():
    torch.manual_seed(0)
    bn = BatchNorm1dNoBias(6)
    assert set(bn.state_dict()) == {"weight", "running_mean", "running_var", "num_batches_tracked"}
    assert [name for name, _ in bn.named_parameters()] == ["weight"]
    with torch.no_grad():
        bn.weight.copy_(torch.linspace(0.5, 2.0, 6))
    x = torch.randn(16, 6) * 3 + 1
    torch.testing.assert_close(bn(x).double(), _batch_norm_f64(x, bn.weight, None), rtol=1e-5, atol=1e-5)
    bn.eval()
    expected = (x - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight
    torch.testing.assert_close(bn(x), expected)
    bn.reset_parameters()
    assert torch.all(bn.weight == 1) and bn.bias is None and torch.all(bn.running_var == 1)


def test_sync_batchnorm_conversion_keeps_the_output_bn_without_shift():
    head = nn.SyncBatchNorm.convert_sync_batchnorm(projection_head("nonlinear", IN_DIM, OUT_DIM))
    assert isinstance(head[1], nn.SyncBatchNorm) and head[1].bias is not None
    assert isinstance(head[4], nn.SyncBatchNorm) and head[4].bias is None and head[4].weight is not None


# ---- bad input ---------------------------------------------------------------------------------------
def test_unknown_kind_raises_config_error_naming_value_and_choices():
    with pytest.raises(ConfigError) as info:
        projection_head("mlp", IN_DIM, OUT_DIM)
    message = str(info.value)
    assert "'mlp'" in message and all(repr(kind) in message for kind in HEAD_KINDS)
    with pytest.raises(ConfigError, match="'mlp'"):
        head_output_dim("mlp", IN_DIM, OUT_DIM)


@pytest.mark.parametrize("kwargs", [dict(out_dim=0), dict(hidden_dim=0), dict(in_dim=0)])
def test_non_positive_dims_raise_config_error(kwargs):
    args = dict(kind="nonlinear", in_dim=IN_DIM, out_dim=OUT_DIM) | kwargs
    with pytest.raises(ConfigError, match="out of range"):
        projection_head(**args)


# ---- SimCLRModel and build_model -----------------------------------------------------------------------
def test_simclr_model_returns_h_and_z():
    torch.manual_seed(0)
    encoder, head = nn.Linear(12, IN_DIM), projection_head("nonlinear", IN_DIM, OUT_DIM)
    model = SimCLRModel(encoder, head)
    x = torch.randn(4, 12)
    h, z = model(x)
    torch.testing.assert_close(h, encoder(x))
    torch.testing.assert_close(z, head(encoder(x)))


def test_build_model_from_default_config_on_cifar_images():
    torch.manual_seed(0)
    model = build_model(EncoderConfig(), HeadConfig(), image_size=32)
    assert model.encoder.stem == "cifar" and model.encoder.feature_dim == 512
    h, z = model(torch.randn(2, 3, 32, 32))
    assert h.shape == (2, 512) and z.shape == (2, 128)


def test_build_model_wires_width_hidden_dim_and_stem_from_config():
    with torch.device("meta"):
        model = build_model(EncoderConfig(name="resnet50", width=2), HeadConfig(out_dim=64, hidden_dim=256), 224)
    assert model.encoder.stem == "imagenet" and model.encoder.feature_dim == 4096
    assert _layout(model.head)[0] == ("linear", 4096, 256, False)
    assert _layout(model.head)[-1] == ("bn", 64, True, False)


def test_build_model_with_no_head_returns_z_equal_to_h():
    torch.manual_seed(0)
    model = build_model(EncoderConfig(width=0.25), HeadConfig(kind="none"), image_size=32)
    h, z = model(torch.randn(2, 3, 32, 32))
    assert z is h


def test_build_model_checks_head_kind_before_building_the_encoder(monkeypatch):
    def must_not_build(*args, **kwargs):
        raise AssertionError("encoder built despite an invalid head kind")

    monkeypatch.setattr(simclr_module, "create_encoder", must_not_build)
    with pytest.raises(ConfigError, match="'deep'"):
        build_model(EncoderConfig(), HeadConfig(kind="deep"), image_size=32)


def test_channels_last_bf16_training_step_end_to_end():
    torch.manual_seed(0)
    model = build_model(EncoderConfig(width=0.25), HeadConfig(), image_size=32)
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h, z = model(x)
    z.float().square().mean().backward()
    assert h.shape == (4, 128) and z.shape == (4, 128)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
