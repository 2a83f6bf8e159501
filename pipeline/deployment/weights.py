"""A network's weights, counted alike whether they are dense, pruned (zeros kept in place) or int8.

Dynamically quantised linear layers keep their weights packed, outside ``parameters()``: they are read through
the layer's ``weight()``, so an int8 model counts the same weights as the float model it came from.
"""

from __future__ import annotations

import torch
from torch import nn


def weight_tensors(network: nn.Module) -> list[torch.Tensor]:
    """Every learned tensor of ``network``: its parameters and the packed weights of its quantised layers."""
    found = [p.detach() for p in network.parameters()]
    for module in network.modules():
        if is_quantized_linear(module):
            found.append(module.weight().dequantize())  # the int8 values, at their scale: zero stays zero
            bias = module.bias()  # kept in float
            found += [bias.detach()] if bias is not None else []
    return found


def is_quantized_linear(module: nn.Module) -> bool:
    """A dynamically quantised linear layer: its weights are packed, read through ``weight()``."""
    return isinstance(module, torch.ao.nn.quantized.dynamic.Linear)


def count_weights(network: nn.Module) -> int:
    return sum(t.numel() for t in weight_tensors(network))


def count_nonzero_weights(network: nn.Module) -> int:
    """Weights that are not exactly zero: what pruning removes."""
    return sum(int(torch.count_nonzero(t)) for t in weight_tensors(network))
