"""Global magnitude pruning with ``torch.nn.utils.prune``: the smallest weights of all layers together go to zero.

While the mask is on, every forward pass multiplies the weights by it, so a fine-tune after pruning
recovers accuracy with the zeros held. :func:`permanent` folds the mask into the weights (a plain
module again, zeros in place) for saving and serving.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils import prune

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d)


def prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """Every linear and convolution weight, the head's included (biases and norms stay dense: they are few)."""
    return [(module, "weight") for module in model.modules() if isinstance(module, PRUNABLE)]


def prune_globally(model: nn.Module, sparsity: float) -> nn.Module:
    """``model`` with the ``sparsity`` share of its prunable weights, smallest magnitudes first, masked to zero."""
    prune.global_unstructured(prunable(model), pruning_method=prune.L1Unstructured, amount=sparsity)
    _detach_masked(model)
    return model


def _detach_masked(model: nn.Module) -> None:
    """Each masked weight as a plain tensor: pruning leaves it holding a graph back to its original, which no copy
    (a checkpoint's, the activation prediction's) can take. Every forward pass recomputes it from the mask."""
    for module, name in prunable(model):
        if hasattr(module, f"{name}_mask"):
            setattr(module, name, (getattr(module, f"{name}_orig") * getattr(module, f"{name}_mask")).detach())


def permanent(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with each pruning mask folded into its weights: plain weights that hold zeros."""
    _detach_masked(model)  # the masked weight of the last forward pass may hold a graph
    model = copy.deepcopy(model)
    for module, name in prunable(model):
        if prune.is_pruned(module) and hasattr(module, f"{name}_mask"):
            prune.remove(module, name)
    return model


def sparsity(model: nn.Module) -> float:
    """The share of the prunable weights that are zero."""
    weights = [getattr(module, name).detach() for module, name in prunable(model)]
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / sum(w.numel() for w in weights)
