"""The top-r singular vectors of a pretrained layer's weight: the fixed basis of ``lora_fa_svd`` and ``svd_diag``.

A convolution's weight (out, in, k...) is read as the matrix (out, in·k·k) its output is a product with (the
unfolded input): PEFT's conv LoRA factors its update the same way (a k×k ``lora_A``, a 1×1 ``lora_B``).
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.errors import ConfigError


def weight_matrix(layer: nn.Module) -> torch.Tensor:
    """The layer's weight as an (out, in·k·k) matrix, detached, in float32."""
    weight = layer.weight.detach()
    return weight.reshape(weight.shape[0], -1).float()


def check_rank(layers: dict[str, nn.Module], r: int, key: str) -> None:
    """Refuse a rank above a layer's smaller dimension, naming ``key`` (e.g. ``finetune.lora.r``) and the layer."""
    for name, layer in layers.items():
        rows, cols = weight_matrix(layer).shape
        if r > min(rows, cols):
            raise ConfigError(
                f"{key} = {r}: larger than the smaller dimension of {name} (weight shape "
                f"{tuple(layer.weight.shape)}, as a matrix {rows}x{cols}); allowed 1..{min(rows, cols)}"
            )


def top_singular(layer: nn.Module, r: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``U_r`` (out × r), ``S_r`` (r) and ``V_r`` (in·k·k × r): the r largest singular values and their vectors."""
    u, s, vh = torch.linalg.svd(weight_matrix(layer), full_matrices=False)
    return u[:, :r].contiguous(), s[:r].contiguous(), vh[:r].T.contiguous()
