"""A small ResNet body (He et al. 2016, the CIFAR-sized variant) for images of 32x32 and more.

A 3x3 stem, then one stage of residual blocks per ``model.channels`` entry, each stage after the
first halving the image while it is at least 4 pixels a side, then global average pooling.
Stages are the named layers that transfer and partial fine-tuning count; LoRA adapts every
convolution inside them.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.config.schema import ModelConfig


class BasicBlock(nn.Module):
    """Two 3x3 convolutions added to a shortcut: the input itself, or a 1x1 convolution where the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, batch_norm: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=not batch_norm)
        self.norm1 = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=not batch_norm)
        self.norm2 = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=not batch_norm),
                nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity(),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        return torch.relu(self.norm2(self.conv2(out)) + self.shortcut(x))


def resnet_body(cfg: ModelConfig, input_shape: tuple[int, ...]) -> tuple[nn.Sequential, int]:
    channels, height, width = input_shape
    first = cfg.channels[0]
    body = nn.Sequential()
    stem = [nn.Conv2d(channels, first, 3, padding=1, bias=not cfg.batch_norm)]
    stem += [nn.BatchNorm2d(first)] if cfg.batch_norm else []
    body.add_module("stem", nn.Sequential(*stem, nn.ReLU()))
    channels = first
    for i, out in enumerate(cfg.channels, start=1):
        stride = 2 if i > 1 and min(height, width) >= 4 else 1
        if stride == 2:  # a 3x3 convolution with padding 1 and stride 2 keeps ceil(size / 2)
            height, width = (height + 1) // 2, (width + 1) // 2
        blocks = [BasicBlock(channels, out, stride, cfg.batch_norm)]
        blocks += [BasicBlock(out, out, 1, cfg.batch_norm) for _ in range(cfg.blocks_per_stage - 1)]
        body.add_module(f"stage{i}", nn.Sequential(*blocks))
        channels = out
    body.add_module("pool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(cfg.dropout)))
    return body, channels
