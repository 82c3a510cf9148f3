"""The UNet: an encoder that halves resolution `depth` times, a decoder that climbs back with skips."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

_OLD_NAMES = {"num_classes": "outputs"}  # checkpoint format 1's config keys


@dataclass(frozen=True)
class UNetConfig:
    """Architecture arguments; stored in every checkpoint so it rebuilds the same network."""

    in_channels: int = 3
    outputs: int = 3  # output channels: LFW's classes, then a person logit (spec.output_channels)
    width: int = 8
    depth: int = 4
    stem_stride: int = 2

    @property
    def multiple(self) -> int:
        """Input sides must be divisible by this (every level halves the resolution)."""
        return self.stem_stride * 2**self.depth

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> UNetConfig:
        """Build from a checkpoint's dict, ignoring keys this version does not know; format 1 called
        the output channels `num_classes`."""
        known = {f.name for f in fields(cls)}
        renamed = {_OLD_NAMES.get(key, key): value for key, value in values.items()}
        return cls(**{k: int(v) for k, v in renamed.items() if k in known})


class ConvBNReLU(nn.Sequential):
    """3x3 convolution, batch norm, ReLU: the unit every block is made of."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DoubleConv(nn.Sequential):
    """Two ConvBNReLU units; the first may stride to downsample cheaply."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(
            ConvBNReLU(in_channels, out_channels, stride),
            ConvBNReLU(out_channels, out_channels),
        )


class Down(nn.Sequential):
    """One encoder level: 2x2 max-pool, then a DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))


class Up(nn.Module):
    """One decoder level: reduce channels at low resolution, upsample 2x, concat the skip, convolve."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.reduce = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )
        self.conv = DoubleConv(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(self.reduce(x), size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    """(N, in_channels, H, W) normalised image -> (N, outputs, H, W) logits; H, W % multiple == 0."""

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or UNetConfig()
        widths = [config.width * 2**level for level in range(config.depth + 1)]
        self.stem = DoubleConv(config.in_channels, widths[0], stride=config.stem_stride)
        self.downs = nn.ModuleList(Down(widths[i], widths[i + 1]) for i in range(config.depth))
        self.ups = nn.ModuleList(Up(widths[i + 1], widths[i]) for i in reversed(range(config.depth)))
        self.head = nn.Conv2d(widths[0], config.outputs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        logits = self.head(x)
        if self.config.stem_stride > 1:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy with every Conv->BatchNorm pair folded into the conv (same outputs, faster)."""
    fused = copy.deepcopy(model).eval()
    for module in fused.modules():
        if isinstance(module, nn.Sequential):
            children = list(module.children())
            for i in range(len(children) - 1):
                conv, bn = children[i], children[i + 1]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    _fold(conv, bn)
                    module[i + 1] = nn.Identity()
    return fused


@torch.no_grad()
def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold `bn`'s affine normalisation into `conv`'s weight and bias, in place."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
