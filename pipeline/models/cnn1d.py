"""A 1-D convolutional body for short signals: examples of shape (C, L), C channels of L samples.

One block per ``model.channels`` entry: a Conv1d whose padding keeps the length, optional
BatchNorm1d, ReLU, and a MaxPool1d halving the signal while it is at least 4 samples long;
then global average pooling over time. The blocks are the named layers (``layer1``..) that
transfer and partial fine-tuning count; LoRA adapts their convolutions.
"""

from __future__ import annotations

from torch import nn

from pipeline.config.schema import ModelConfig

KERNEL_SIZE = 5  # odd, so padding KERNEL_SIZE // 2 keeps the length; wide enough to see a short motif's shape


def cnn1d_body(cfg: ModelConfig, input_shape: tuple[int, int]) -> tuple[nn.Sequential, int]:
    channels, length = input_shape
    body = nn.Sequential()
    for i, out in enumerate(cfg.channels, start=1):
        block: list[nn.Module] = [nn.Conv1d(channels, out, KERNEL_SIZE, padding=KERNEL_SIZE // 2)]
        block += [nn.BatchNorm1d(out)] if cfg.batch_norm else []
        block += [nn.ReLU()]
        if length >= 4:
            block.append(nn.MaxPool1d(2))
            length //= 2
        body.add_module(f"layer{i}", nn.Sequential(*block))
        channels = out
    body.add_module("pool", nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Dropout(cfg.dropout)))
    return body, channels
