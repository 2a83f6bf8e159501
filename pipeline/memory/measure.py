"""Measured memory: the peak during a block of work, and the model state training holds.

:class:`PeakMemory`: on a CUDA device, the peak of ``torch.cuda.max_memory_allocated``
(tensors the caching allocator handed out, over the whole block); on the CPU, the peak of live tensor
bytes over the block's first optimizer steps (:mod:`pipeline.memory.live_tensors`): the weights it is
handed, then gradients, optimizer state, activations, batches and temporaries. The process's resident
memory is no measure there: its rise over a small model's run is the allocator's and the libraries' noise.

:func:`model_state_bytes`: the bytes of the tensors that make up model state (weights and
buffers, gradients, optimizer state), counted from the tensors themselves on whatever device
they live; what the estimator in :mod:`pipeline.memory.estimate` predicts from the
parameter count, so the two can be checked against each other on any device.
"""

from __future__ import annotations

from typing import Iterable, Optional

import torch
from torch import nn

from pipeline.memory.live_tensors import FirstSteps


class PeakMemory:
    """The measured peak of a block of training (``.peak_bytes``); ``module``: what trains, whose weights and
    buffers the CPU count starts from."""

    def __init__(self, device: torch.device, module: Optional[nn.Module] = None):
        self.device = device
        self.module = module
        self.peak_bytes = 0

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            held = [*self.module.parameters(), *self.module.buffers()] if self.module is not None else []
            self._steps = FirstSteps(held).__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = int(torch.cuda.max_memory_allocated(self.device))
        else:
            self._steps.__exit__(*exc)
            self.peak_bytes = int(self._steps.peak_bytes)


def model_state_bytes(module: nn.Module, optimizers: Iterable[torch.optim.Optimizer]) -> int:
    """Bytes held by ``module``'s parameters and buffers, their gradients and the optimizers' state.

    Call it right after an optimizer step, while gradients and optimizer state exist. Each
    storage counts once (tied weights, views and shared buffers are not double-counted).
    """
    tensors = [*module.parameters(), *module.buffers()]
    tensors += [p.grad for p in module.parameters() if p.grad is not None]
    tensors += [
        value
        for optimizer in optimizers
        for state in optimizer.state.values()
        for value in state.values()
        if torch.is_tensor(value)
    ]
    storages = {}
    for tensor in tensors:
        storage = tensor.untyped_storage()
        storages[(storage.device, storage.data_ptr())] = storage.nbytes()
    return sum(storages.values())
