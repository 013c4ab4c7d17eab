"""Encoders f(.): every registered ResNet builds, has torchvision's layout and numbers, and rejects bad input."""
from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from simclr_core.models import ResNetEncoder, create_encoder, list_encoders, register_encoder
from simclr_core.models import encoders as encoders_module
from simclr_core.models.encoders import stem_cost_note
from simclr_core.validation import ConfigError

FEATURE_DIM_1X = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048, "resnet152": 2048}


def _randomize_batchnorm(model: nn.Module, seed: int = 0) -> None:
    """Give every BN non-trivial statistics and affine parameters (the zero-init gammas would hide the blocks)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)


def _load_into_torchvision(encoder: nn.Module, tv: torchvision.models.ResNet) -> torchvision.models.ResNet:
    result = tv.load_state_dict(encoder.state_dict(), strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"]
    assert result.unexpected_keys == []
    tv.fc = nn.Identity()
    return tv.eval()


# ---- registry --------------------------------------------------------------------------------
def test_list_encoders_names_the_five_resnets_in_depth_order():
    assert list_encoders() == ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


def test_register_encoder_rejects_a_duplicate_name():
    def resnet18(**kwargs):  # same name as the registered one
        raise AssertionError("must not be called")

    with pytest.raises(ValueError, match="resnet18"):
        register_encoder(resnet18)
    assert encoders_module._ENCODERS["resnet18"] is encoders_module.resnet18


@pytest.mark.parametrize(
    "kwargs, bad, choices",
    [
        (dict(name="resnet9"), "'resnet9'", ["'resnet18'", "'resnet50'", "'resnet152'"]),
        (dict(name="resnet18", width=3), "3", ["0.25", "0.5", "1.0", "2.0", "4.0"]),
        (dict(name="resnet18", width=0.75), "0.75", ["0.25", "0.5", "1.0", "2.0", "4.0"]),
        (dict(name="resnet18", width=True), "True", ["0.25", "0.5", "1.0", "2.0", "4.0"]),
        (dict(name="resnet18", stem="tiny"), "'tiny'", ["'auto'", "'cifar'", "'imagenet'"]),
    ],
)
def test_bad_arguments_raise_config_error_naming_value_and_choices_before_building(monkeypatch, kwargs, bad, choices):
    def must_not_build(**_):
        raise AssertionError("an encoder was built despite invalid arguments")

    monkeypatch.setitem(encoders_module._ENCODERS, "resnet18", must_not_build)
    name = kwargs.pop("name")
    with pytest.raises(ConfigError) as info:
        create_encoder(name, **kwargs)
    message = str(info.value)
    assert bad in message
    for choice in choices:
        assert choice in message


# ---- shapes, widths and parameter counts ----------------------------------------------------------
@pytest.mark.parametrize("name", list_encoders())
def test_forward_gives_pooled_features_of_feature_dim(name):
    torch.manual_seed(0)
    encoder = create_encoder(name, stem="cifar")
    assert not hasattr(encoder, "fc")
    assert encoder.feature_dim == FEATURE_DIM_1X[name]
    # The deep ones on 16 px: same code path, a quarter of the compute.
    side = 32 if name in ("resnet18", "resnet34", "resnet50") else 16
    with torch.no_grad():
        h = encoder(torch.randn(2, 3, side, side))
    assert h.shape == (2, FEATURE_DIM_1X[name])
    assert torch.isfinite(h).all()


@pytest.mark.parametrize("name", list_encoders())
def test_1x_parameter_count_equals_torchvision_without_fc(name):
    with torch.device("meta"):
        ours = create_encoder(name)
        tv = getattr(torchvision.models, name)()
    n_ours = sum(p.numel() for p in ours.parameters())
    n_tv = sum(p.numel() for k, p in tv.named_parameters() if not k.startswith("fc."))
    assert n_ours == n_tv


@pytest.mark.parametrize("width, published", [(1, 23.5e6), (2, 93.9e6), (4, 375e6)])
def test_resnet50_parameter_count_matches_the_paper(width, published):
    # Table 6 / Figure 7: ResNet-50 (1x, 2x, 4x) has 24M, 94M, 375M parameters. Built on the meta device: no memory.
    with torch.device("meta"):
        encoder = create_encoder("resnet50", width=width)
    n = sum(p.numel() for p in encoder.parameters())
    assert n == pytest.approx(published, rel=0.01)
    assert encoder.feature_dim == 2048 * width


@pytest.mark.parametrize("name, width", [("resnet18", 2), ("resnet50", 4), ("resnet18", 0.25), ("resnet50", 0.5)])
def test_width_multiplier_scales_every_layer_including_the_stem(name, width):
    with torch.device("meta"):
        wide = create_encoder(name, width=width)
        narrow = create_encoder(name)
    assert wide.conv1.out_channels == 64 * width
    assert wide.feature_dim == narrow.feature_dim * width and isinstance(wide.feature_dim, int)
    narrow_convs = {k: m for k, m in narrow.named_modules() if isinstance(m, nn.Conv2d)}
    for key, conv in wide.named_modules():
        if isinstance(conv, nn.Conv2d):
            ref = narrow_convs[key]
            assert conv.out_channels == ref.out_channels * width, key
            assert conv.in_channels == (3 if key == "conv1" else ref.in_channels * width), key


# ---- stems ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("image_size, stem", [(32, "cifar"), (64, "cifar"), (65, "imagenet"), (224, "imagenet"),
                                              (None, "imagenet")])
def test_auto_stem_is_cifar_up_to_64_px_and_imagenet_above(image_size, stem):
    with torch.device("meta"):
        encoder = create_encoder("resnet18", image_size=image_size)
    assert encoder.stem == stem
    if stem == "cifar":
        assert encoder.conv1.kernel_size == (3, 3) and encoder.conv1.stride == (1, 1)
        assert encoder.conv1.padding == (1, 1)
        assert isinstance(encoder.maxpool, nn.Identity)
    else:
        assert encoder.conv1.kernel_size == (7, 7) and encoder.conv1.stride == (2, 2)
        assert isinstance(encoder.maxpool, nn.MaxPool2d)


def test_explicit_stem_overrides_image_size():
    with torch.device("meta"):
        assert create_encoder("resnet18", stem="imagenet", image_size=32).stem == "imagenet"
        assert create_encoder("resnet18", stem="cifar", image_size=224).stem == "cifar"


def test_a_cifar_stem_on_views_above_64_px_is_named_with_what_it_costs():
    assert stem_cost_note("cifar", 64) is None
    assert stem_cost_note("auto", 224) is None and stem_cost_note("imagenet", 224) is None
    note = stem_cost_note("cifar", 96)
    assert note.startswith("encoder.stem='cifar' (no downsampling) on 96 px views runs every stage at full "
                           "resolution: 13-16x the compute") and "add encoder.stem=auto" in note
    for name, width in (("resnet18", 0.25), ("resnet50", 1.0)):     # the cost it names, counted
        flops = {}
        for stem in ("cifar", "imagenet"):
            with torch.device("meta"):
                encoder, views = create_encoder(name, width=width, stem=stem), torch.empty(2, 3, 224, 224)
            with FlopCounterMode(display=False) as counter:
                encoder(views)
            flops[stem] = counter.get_total_flops()
        assert 12.5 < flops["cifar"] / flops["imagenet"] < 16.5


# ---- torchvision equivalence ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_state_dict_loads_into_torchvision_and_gives_the_same_features(name):
    torch.manual_seed(0)
    ours = create_encoder(name, stem="imagenet")
    _randomize_batchnorm(ours)
    ours.eval()
    tv = _load_into_torchvision(ours, getattr(torchvision.models, name)())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), rtol=1e-5, atol=1e-5)


def test_cifar_stem_equals_torchvision_with_the_appendix_b9_modification():
    torch.manual_seed(0)
    ours = create_encoder("resnet18", stem="cifar")
    _randomize_batchnorm(ours)
    ours.eval()
    tv = torchvision.models.resnet18()
    tv.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    tv.maxpool = nn.Identity()
    tv = _load_into_torchvision(ours, tv)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), rtol=1e-5, atol=1e-5)


# ---- initialisation --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_last_bn_of_every_block_starts_at_zero_and_convs_are_kaiming_fan_out(name):
    torch.manual_seed(0)
    encoder = create_encoder(name, stem="cifar")
    last = "bn2" if name == "resnet18" else "bn3"
    n_blocks = 0
    for key, m in encoder.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            expected = 0.0 if key.endswith(last) and key.startswith("layer") else 1.0
            assert torch.all(m.weight == expected), key
            assert torch.all(m.bias == 0), key
            n_blocks += key.endswith(last) and key.startswith("layer")
    assert n_blocks == (8 if name == "resnet18" else 16)
    conv = encoder.layer3[1].conv2  # 3x3, 256 -> 256 in both: ~590k samples of the init distribution
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.02)


def test_fresh_encoder_blocks_start_as_identity_on_the_residual_path():
    # With gamma = 0 in each block's last BN, a block outputs relu(shortcut(x)); identity blocks give relu(x) = x.
    torch.manual_seed(0)
    encoder = create_encoder("resnet18", stem="cifar").eval()
    x = torch.rand(2, 64, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(encoder.layer1(x), x)


# ---- memory format and mixed precision ------------------------------------------------------------
def test_channels_last_gives_the_same_features():
    torch.manual_seed(0)
    encoder = create_encoder("resnet18", width=0.5, stem="cifar")
    _randomize_batchnorm(encoder)
    encoder.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        reference = encoder(x)
        encoder = encoder.to(memory_format=torch.channels_last)
        assert encoder.conv1.weight.is_contiguous(memory_format=torch.channels_last)
        h = encoder(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(h, reference, rtol=1e-4, atol=1e-4)


def test_cpu_bf16_autocast_runs_forward_and_backward():
    torch.manual_seed(0)
    encoder = create_encoder("resnet18", width=0.5, stem="cifar").to(memory_format=torch.channels_last)
    _randomize_batchnorm(encoder)
    x = torch.randn(4, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        reference = encoder(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = encoder(x)
    assert h.dtype == torch.bfloat16
    h.float().square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in encoder.parameters())
    # bf16 keeps ~3 significant digits; 18 layers of it stay within a few percent of fp32.
    assert (h.float() - reference).norm() / reference.norm() < 0.05


def test_quarter_width_encoder_runs_forward():
    torch.manual_seed(0)
    encoder = create_encoder("resnet18", width=0.25, image_size=32)
    assert encoder.conv1.out_channels == 16 and encoder.feature_dim == 128
    assert encoder(torch.randn(2, 3, 32, 32)).shape == (2, 128)


def test_resnet_encoder_rejects_widths_that_give_fractional_channels():
    with pytest.raises(ConfigError, match="whole number of channels"):
        ResNetEncoder(encoders_module.BasicBlock, (1, 1, 1, 1), width=0.3)


def test_resnet_encoder_rejects_auto_stem_directly():
    with pytest.raises(ConfigError, match="'auto'"):
        ResNetEncoder(encoders_module.BasicBlock, (1, 1, 1, 1), stem="auto")
