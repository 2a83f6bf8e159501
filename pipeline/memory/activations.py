"""Activation memory: the bytes the autograd graph keeps from a training step's forward pass for its backward.

Measured exactly with ``torch.autograd.graph.saved_tensors_hooks``: every tensor autograd saves passes
through the hook, and its storage is counted once (a layer's output saved by the next layer and by its
activation is one storage). Storages of the model's parameters and buffers are left out: they are model
state, counted by :mod:`.estimate`. The input batch counts (the first layer keeps it for its weights'
gradient), as do dropout masks, max-pool indices and the loss's saved softmax.

Predicted before training from the architecture and the batch size alone: the same forward and loss on
the ``meta`` device, where tensors have shapes and dtypes but no data, so nothing is computed or
allocated. Prediction and measurement differ where the real run does what the architecture does not
say: autocast's low-precision copies under mixed precision, kernels that save extra workspace on a GPU,
a last batch smaller than ``batch_size``.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import torch
from torch import nn

from pipeline.models.freezing import hold_frozen_norms

ESTIMATED = "memory/activation_bytes_estimated"
MEASURED = "memory/activation_bytes_measured"


class SavedTensorBytes:
    """Counts the bytes of the distinct storages autograd saves inside the ``with`` block (``.bytes``), leaving out
    those of ``module``'s parameters and buffers."""

    def __init__(self, module: nn.Module):
        self.state = {_key(t) for t in (*module.parameters(), *module.buffers())}
        self.seen: dict[int, int] = {}

    @property
    def bytes(self) -> int:
        return sum(self.seen.values())

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        key = _key(tensor)
        if key not in self.state:
            self.seen[key] = tensor.untyped_storage().nbytes()
        return tensor

    @contextmanager
    def counting(self) -> Iterator[SavedTensorBytes]:
        with torch.autograd.graph.saved_tensors_hooks(self._pack, lambda tensor: tensor):
            yield self


def first_batch(data, batch_size: int) -> tuple[torch.Tensor, ...]:
    """The shapes of a full training batch: the first ``batch_size`` examples of a ``TensorDataset`` (read without
    drawing from the loader's shuffling generator)."""
    return tuple(t[:batch_size] for t in data.tensors)


def _key(tensor: torch.Tensor) -> int:
    """The storage's identity (its C++ object: meta storages have no data address to tell them apart)."""
    return tensor.untyped_storage()._cdata


def predict_activation_bytes(
    module: nn.Module,
    batch: tuple[torch.Tensor, ...],
    loss: Optional[Callable[[nn.Module, tuple], torch.Tensor]] = None,
) -> int:
    """The activation bytes of one training step of ``module`` (in training mode) on ``batch``, computed on the
    ``meta`` device: ``loss(module_copy, meta_batch)`` runs the forward pass and the loss there; by default the
    module's own ``loss(batch)``, as the project's LightningModules define it."""
    meta = copy.deepcopy(module).to("meta").train()
    hold_frozen_norms(meta)  # as training holds them (pipeline.models.freezing)
    shaped = tuple(torch.empty_like(t, device="meta") for t in batch)
    meter = SavedTensorBytes(meta)
    with meter.counting(), torch.enable_grad():
        loss(meta, shaped) if loss is not None else meta.loss(shaped)
    return meter.bytes
