"""Measured memory: the peak during a block of work, and the model state training holds.

:class:`PeakMemory`: on a CUDA device, the peak of ``torch.cuda.max_memory_allocated``
(tensors the caching allocator handed out); on CPU, the peak increase of the process's
resident memory over its level at the start, sampled by a background thread. Either includes
more than model state (activations, the batch, allocator slack, library buffers).

:func:`model_state_bytes`: the bytes of the tensors that make up model state (weights and
buffers, gradients, optimizer state), counted from the tensors themselves on whatever device
they live; what the estimator in :mod:`pipeline.memory.estimate` predicts from the
parameter count, so the two can be checked against each other on any device.
"""

from __future__ import annotations

import threading
from typing import Iterable

import psutil
import torch
from torch import nn


class PeakMemory:
    def __init__(self, device: torch.device, interval_s: float = 0.005):
        self.device = device
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._process = psutil.Process()
            self._start = self._process.memory_info().rss
            self._highest = self._start
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = int(torch.cuda.max_memory_allocated(self.device))
        else:
            self._stop.set()
            self._thread.join()
            self._highest = max(self._highest, self._process.memory_info().rss)
            self.peak_bytes = int(self._highest - self._start)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._highest = max(self._highest, self._process.memory_info().rss)


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
