"""A classifier as a body of named layers plus a separate, named head.

Later paradigms act on these names: transfer freezes the body and swaps the head,
partial fine-tuning unfreezes the top N layers, adapters wrap the body's layers.

Each backbone reads the examples' shape its own way: ``mlp`` flattens any shape; ``cnn1d``
takes signals (L,) or (C, L); ``cnn`` and ``resnet`` take images (H, W) or (C, H, W). An
example without its channel axis gets one channel, added by the body's first module.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from pipeline.config.schema import ModelConfig
from pipeline.errors import ConfigError
from pipeline.models.cnn1d import cnn1d_body
from pipeline.models.resnet import resnet_body

MIN_SIDE = 4  # the image backbones halve an image only while both its sides are at least this


class Classifier(nn.Module):
    def __init__(self, body: nn.Sequential, head: nn.Module):
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def layers(self) -> list[tuple[str, nn.Module]]:
        """Trainable layers from input to output, head last: what 'the top N layers' counts."""
        blocks = [(f"body.{name}", m) for name, m in self.body.named_children() if any(True for _ in m.parameters())]
        return blocks + [("head", self.head)]


def build_classifier(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Classifier:
    body, features = build_body(cfg, input_shape)
    return Classifier(body, nn.Linear(features, num_classes))


def build_body(cfg: ModelConfig, input_shape: tuple[int, ...]) -> tuple[nn.Sequential, int]:
    """The backbone named in ``model.backbone`` and the width of its output."""
    if cfg.backbone == "mlp":
        return _mlp_body(cfg, math.prod(input_shape))
    if cfg.backbone == "cnn1d":
        shape = _signal_shape(input_shape)
        body, features = cnn1d_body(cfg, shape)
    else:
        shape = _image_shape(cfg.backbone, input_shape)
        body, features = resnet_body(cfg, shape) if cfg.backbone == "resnet" else _cnn_body(cfg, shape)
    return (_with_channel_axis(body, input_shape) if len(shape) > len(input_shape) else body), features


def _signal_shape(input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(C, L) for cnn1d: a signal (L,) has one channel."""
    if len(input_shape) not in (1, 2):
        raise ConfigError(
            f"model.backbone = 'cnn1d': needs 1-D signals (examples of shape (L,) or (C, L)), but the data has "
            f"examples of shape {tuple(input_shape)}; for images use 'cnn' or 'resnet', for anything else 'mlp'"
        )
    return (1, *input_shape) if len(input_shape) == 1 else tuple(input_shape)


def _image_shape(backbone: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(C, H, W) for cnn and resnet: a grey image (H, W) has one channel; thin images are refused."""
    if len(input_shape) not in (2, 3):
        raise ConfigError(
            f"model.backbone = '{backbone}': needs image inputs (examples of shape (H, W) or (C, H, W)), but the data "
            f"has examples of shape {tuple(input_shape)}; for 1-D signals use 'cnn1d', for tables 'mlp'"
        )
    shape = (1, *input_shape) if len(input_shape) == 2 else tuple(input_shape)
    height, width = shape[1:]
    if min(height, width) < MIN_SIDE:
        side, size = ("high", height) if height <= width else ("wide", width)
        raise ConfigError(
            f"model.backbone = '{backbone}': examples of shape {tuple(input_shape)} are {size} pixel"
            f"{'s' if size > 1 else ''} {side}, and images need at least {MIN_SIDE} a side to be downsampled; "
            "for 1-D signals use 'cnn1d'"
        )
    return shape


def _with_channel_axis(body: nn.Sequential, input_shape: tuple[int, ...]) -> nn.Sequential:
    """``body``, for examples of ``input_shape`` that lack the channel axis: a first module adds one channel.

    It holds no weights, so the layers that transfer and fine-tuning count, and the state dict, stay the same.
    """
    channel_axis = nn.Unflatten(1, (1, input_shape[0]))
    return nn.Sequential(OrderedDict([("channel_axis", channel_axis), *body.named_children()]))


def _mlp_body(cfg: ModelConfig, in_features: int) -> tuple[nn.Sequential, int]:
    body = nn.Sequential()
    body.add_module("flatten", nn.Flatten())
    width = in_features
    for i, hidden in enumerate(cfg.hidden_sizes, start=1):
        body.add_module(f"layer{i}", mlp_block(width, hidden, cfg))
        width = hidden
    return body, width


def mlp_block(width: int, hidden: int, cfg: ModelConfig) -> nn.Sequential:
    """Linear, optional BatchNorm, ReLU, dropout: one layer of the mlp body (or of a task's tower)."""
    block: list[nn.Module] = [nn.Linear(width, hidden)]
    block += [nn.BatchNorm1d(hidden)] if cfg.batch_norm else []
    block += [nn.ReLU(), nn.Dropout(cfg.dropout)]
    return nn.Sequential(*block)


def _cnn_body(cfg: ModelConfig, input_shape: tuple[int, ...]) -> tuple[nn.Sequential, int]:
    """3x3 conv blocks, each halving the image while it is at least 4 pixels a side, then global pooling."""
    channels, height, width = input_shape
    body = nn.Sequential()
    for i, out in enumerate(cfg.channels, start=1):
        block: list[nn.Module] = [nn.Conv2d(channels, out, kernel_size=3, padding=1)]
        block += [nn.BatchNorm2d(out)] if cfg.batch_norm else []
        block += [nn.ReLU()]
        if min(height, width) >= MIN_SIDE:
            block.append(nn.MaxPool2d(2))
            height, width = height // 2, width // 2
        body.add_module(f"layer{i}", nn.Sequential(*block))
        channels = out
    body.add_module("pool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(cfg.dropout)))
    return body, channels
