"""The base encoder f(.): ResNets with SimCLR's width multiplier, in a tiny timm-style registry.

Paper, Section 2.1: "We opt for simplicity and adopt the commonly used ResNet (He et al., 2016) to obtain
h_i = f(x̃_i) = ResNet(x̃_i) where h_i ∈ R^d is the output after the average pooling layer."

Layer and parameter names are torchvision's (conv1, bn1, layer1..layer4, blocks with conv1/bn1/conv2/bn2
[/conv3/bn3] and downsample.0/.1), so a 1x encoder's state dict loads into `torchvision.models.resnetXX()`
with only `fc.*` missing, and the two compute the same features.

Where this departs from torchvision, it follows the official code (google-research/simclr, resnet.py,
https://github.com/google-research/simclr/blob/383d4143fd8cf7879ae10f1046a9baeb753ff438/resnet.py):
  * the width multiplier scales every layer, the stem included (64*w stem channels, then 64w/128w/256w/512w
    block channels); torchvision's `wide_resnet` only widens the 3x3 convolutions of bottlenecks;
  * the last BatchNorm of every residual block starts with gamma = 0 (`init_zero=True` in the official
    `residual_block` and `bottleneck_block`), so each block starts as the identity; torchvision's default
    is `zero_init_residual=False`.
Where the official code departs from torchvision, this follows torchvision, so weights stay interchangeable:
  * convolutions start from Kaiming-normal with fan_out (the official code uses TF's variance_scaling, i.e.
    truncated normal with fan_in);
  * a BasicBlock gets a projection shortcut only where the shape changes (the official code gives the first
    block of every stage one, layer1 of ResNet-18/34 included);
  * the ImageNet stem's max-pool pads 1 pixel on both sides (the official "SAME" pads 0 before and 1 after:
    same output size, windows shifted by one pixel).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from simclr_core.config import ENCODER_WIDTHS
from simclr_core.models.fused_bn import batch_norm_act
from simclr_core.validation import ConfigError, require_choice, require_range

STEMS = ("auto", "cifar", "imagenet")
# stem="auto" picks the CIFAR stem up to this image side (the official tf2 code switches at 32 px).
CIFAR_STEM_MAX_IMAGE_SIZE = 64

_ENCODERS: dict[str, Callable[..., "ResNetEncoder"]] = {}


# ---- registry -----------------------------------------------------------------------------------
def register_encoder(factory: Callable[..., "ResNetEncoder"]) -> Callable[..., "ResNetEncoder"]:
    """Record `factory` under its function name; `create_encoder(name, ...)` calls it."""
    name = factory.__name__
    if name in _ENCODERS:
        raise ValueError(f"encoder {name!r} is already registered")
    _ENCODERS[name] = factory
    return factory


def list_encoders() -> list[str]:
    """Names of the registered encoders, in registration order (shallow to deep)."""
    return list(_ENCODERS)


def resolve_stem(stem: str, image_size: int | None) -> str:
    """Map "auto" to "cifar" for images of at most 64 px and to "imagenet" otherwise.

    With `image_size=None`, "auto" means "imagenet": the standard ResNet, as torchvision's `resnetXX()`
    and the official code's default `image_size=224` give.
    """
    require_choice("encoder.stem", stem, STEMS)
    if stem != "auto":
        return stem
    if image_size is not None and image_size <= CIFAR_STEM_MAX_IMAGE_SIZE:
        return "cifar"
    return "imagenet"


def stem_cost_note(stem: str, image_size: int) -> str | None:
    """What an explicit CIFAR stem costs on views larger than CIFAR_STEM_MAX_IMAGE_SIZE, or None where it costs
    nothing unusual. The CIFAR stem does not downsample, so every stage runs at 4x the side of the ImageNet stem's:
    13-16x the compute (FLOPs counted for ResNet-18 x0.25 to ResNet-50 x1) and about 9x the activation memory
    (registry/run_memory.py's estimate for ResNet-18 x0.25). An experiment declared on CIFAR-10 (Appendix B.9's
    setting) keeps its CIFAR stem when given another dataset on the command line, which is seldom what is meant."""
    if stem != "cifar" or image_size <= CIFAR_STEM_MAX_IMAGE_SIZE:
        return None
    return (f"encoder.stem='cifar' (no downsampling) on {image_size} px views runs every stage at full resolution: "
            "13-16x the compute and about 9x the activation memory of encoder.stem='imagenet', which encoder.stem=auto "
            f"picks above {CIFAR_STEM_MAX_IMAGE_SIZE} px. Experiments declared on CIFAR-10 set the CIFAR stem; on "
            "larger images add encoder.stem=auto unless you mean it")


def create_encoder(name: str, *, width: float = 1.0, stem: str = "auto", image_size: int | None = None) -> nn.Module:
    """Build the registered encoder `name` at width multiplier `width`, one of ENCODER_WIDTHS.

    The paper's widths are 1x, 2x and 4x; 0.25x and 0.5x (16 and 32 stem channels) are CPU-scale extensions.

    `stem`: "cifar" (3x3 conv, stride 1, no max-pool), "imagenet" (7x7 conv, stride 2, 3x3 max-pool) or
    "auto" (see `resolve_stem`). All arguments are checked before any layer is built.
    """
    require_choice("encoder.name", name, list_encoders())
    if isinstance(width, bool):
        raise ConfigError(f"encoder.width={width!r} is not valid; choose one of: "
                          + ", ".join(map(repr, ENCODER_WIDTHS)))
    require_choice("encoder.width", width, ENCODER_WIDTHS)
    if image_size is not None:
        require_range("image_size", image_size, low=1)
    return _ENCODERS[name](width=width, stem=resolve_stem(stem, image_size))


# ---- residual blocks ----------------------------------------------------------------------------
def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    """Projection shortcut (1x1 conv + BN) where the shape changes; None means the identity."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(_conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (ResNet-18/34); output channels = `channels`."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = _conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = _shortcut(in_channels, channels, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = batch_norm_act(self.bn1, self.conv1(x))
        return batch_norm_act(self.bn2, self.conv2(out), residual=identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride, "ResNet v1.5"), 1x1 expand (ResNet-50/101/152); output = 4*channels."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = _conv1x1(in_channels, channels)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = _conv3x3(channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = _conv1x1(channels, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample = _shortcut(in_channels, out_channels, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = batch_norm_act(self.bn1, self.conv1(x))
        out = batch_norm_act(self.bn2, self.conv2(out))
        return batch_norm_act(self.bn3, self.conv3(out), residual=identity)


# ---- the encoder --------------------------------------------------------------------------------
class ResNetEncoder(nn.Module):
    """ResNet without its classifier: forward(x: (B, 3, H, W)) -> h: (B, feature_dim), after global average pooling.

    Appendix B.9 (CIFAR-10): the first 7x7 stride-2 convolution is replaced by a 3x3 stride-1 convolution and
    the first max-pooling is removed; `stem="cifar"` does that (`maxpool` is then an `nn.Identity`).
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, int, int, int], *,
                 width: float = 1.0, stem: str = "imagenet"):
        super().__init__()
        require_choice("encoder.stem", stem, ("cifar", "imagenet"))
        require_range("encoder.width", width, low=0, low_inclusive=False)
        if not float(64 * width).is_integer():
            raise ConfigError(f"encoder.width={width!r}: 64 * width must be a whole number of channels")
        self.width = width
        self.stem = stem
        base = int(64 * width)
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(3, base, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(3, base, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(base)

        in_channels = base
        stages = []
        for i, num_blocks in enumerate(layers):
            channels, stride = base * 2**i, (1 if i == 0 else 2)
            blocks = [block(in_channels, channels, stride)]
            in_channels = channels * block.expansion
            blocks += [block(in_channels, channels) for _ in range(1, num_blocks)]
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = in_channels

        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, (BasicBlock, Bottleneck)):
                # Official resnet.py: batch_norm_relu(..., init_zero=True) on each block's last BN.
                nn.init.zeros_(m.last_bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(batch_norm_act(self.bn1, self.conv1(x)))  # (B, 64w, H/s, W/s); s = 1 (cifar) or 4
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, feature_dim, H/(8s), W/(8s))
        return torch.flatten(self.avgpool(x), 1)  # (B, feature_dim)


# ---- registered encoders: feature_dim = 512*w (BasicBlock) or 2048*w (Bottleneck) ------------------
@register_encoder
def resnet18(*, width: float = 1.0, stem: str = "imagenet") -> ResNetEncoder:
    return ResNetEncoder(BasicBlock, (2, 2, 2, 2), width=width, stem=stem)


@register_encoder
def resnet34(*, width: float = 1.0, stem: str = "imagenet") -> ResNetEncoder:
    return ResNetEncoder(BasicBlock, (3, 4, 6, 3), width=width, stem=stem)


@register_encoder
def resnet50(*, width: float = 1.0, stem: str = "imagenet") -> ResNetEncoder:
    return ResNetEncoder(Bottleneck, (3, 4, 6, 3), width=width, stem=stem)


@register_encoder
def resnet101(*, width: float = 1.0, stem: str = "imagenet") -> ResNetEncoder:
    return ResNetEncoder(Bottleneck, (3, 4, 23, 3), width=width, stem=stem)


@register_encoder
def resnet152(*, width: float = 1.0, stem: str = "imagenet") -> ResNetEncoder:
    return ResNetEncoder(Bottleneck, (3, 8, 36, 3), width=width, stem=stem)
