"""A classifier as a body of named layers plus a separate, named head.

Later paradigms act on these names: transfer freezes the body and swaps the head,
partial fine-tuning unfreezes the top N layers, adapters wrap the body's layers.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pipeline.config.schema import ModelConfig
from pipeline.errors import ConfigError
from pipeline.models.resnet import resnet_body


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
    if len(input_shape) != 3:
        raise ConfigError(
            f"model.backbone = '{cfg.backbone}': needs image inputs (N×H×W or N×C×H×W), but the data has examples of "
            "shape "
            f"{tuple(input_shape)}; use 'mlp'"
        )
    return resnet_body(cfg, input_shape) if cfg.backbone == "resnet" else _cnn_body(cfg, input_shape)


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
        if min(height, width) >= 4:
            block.append(nn.MaxPool2d(2))
            height, width = height // 2, width // 2
        body.add_module(f"layer{i}", nn.Sequential(*block))
        channels = out
    body.add_module("pool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(cfg.dropout)))
    return body, channels
