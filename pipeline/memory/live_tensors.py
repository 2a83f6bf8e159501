"""The peak of live tensor bytes on the CPU, counted from the tensors themselves.

On a CUDA device the caching allocator counts what it hands out (``torch.cuda.max_memory_allocated``); on the
CPU nothing does, and the process's resident memory moves with the allocator's caching, library buffers and
other threads, so its rise over a run reads as noise next to a small model's state. Here every tensor an
operation creates inside the block is seen as it is made (a ``TorchDispatchMode``) and counted until its
storage is freed (a weak reference on it): forward and backward, gradients, optimizer state, batches and
temporaries. The tensors the block is handed (the model's weights and buffers) count from the start.

Seeing every operation costs time (a small model's step takes 1.9 to 3.6 times as long:
benchmarks/live_tensors.py), so :class:`PeakMemory` counts the first optimizer steps only (:data:`STEPS`): the
first allocates the optimizer state, and every later step of a fixed batch size repeats the same allocations.
"""

from __future__ import annotations

import weakref
from typing import Any, Iterable, Optional

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

STEPS = 3  # optimizer steps counted: the first (it allocates the optimizer state) and two that repeat it


class LiveTensorBytes(TorchDispatchMode):
    """Inside the ``with`` block, :attr:`peak_bytes`: the most bytes of distinct tensor storages alive at once, of
    those ``held`` (alive at the start and counted throughout) and those the block's operations created."""

    def __init__(self, held: Iterable[torch.Tensor] = ()):
        super().__init__()
        held_storages = self._storages(held)
        self._held = set(held_storages)  # addresses counted from the start: an in-place update is no new tensor
        self._live: dict[int, int] = {}  # a storage created inside the block: its address -> its bytes
        self._refs: dict[int, weakref.ref] = {}
        self.held_bytes = sum(held_storages.values())
        self.live_bytes = 0
        self.peak_bytes = self.held_bytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None) -> Any:
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor):
            self._track(out)
        elif isinstance(out, (tuple, list)):
            for tensor in tree_leaves(out):
                if isinstance(tensor, torch.Tensor):
                    self._track(tensor)
        return out

    def _track(self, tensor: torch.Tensor) -> None:
        if tensor.device.type != "cpu" or tensor.is_quantized or tensor.is_sparse:
            return
        storage = tensor.untyped_storage()
        address, size = storage.data_ptr(), storage.nbytes()
        if size == 0 or address in self._live or address in self._held:
            return
        self._live[address] = size
        self._refs[address] = weakref.ref(storage, lambda _, address=address: self._freed(address))
        self.live_bytes += size
        self.peak_bytes = max(self.peak_bytes, self.held_bytes + self.live_bytes)

    def _freed(self, address: int) -> None:
        self.live_bytes -= self._live.pop(address, 0)
        self._refs.pop(address, None)

    @staticmethod
    def _storages(tensors: Iterable[torch.Tensor]) -> dict[int, int]:
        storages = {}
        for tensor in tensors:
            if tensor.device.type == "cpu" and not tensor.is_quantized:
                storage = tensor.untyped_storage()
                storages[storage.data_ptr()] = storage.nbytes()
        return storages


class FirstSteps:
    """:class:`LiveTensorBytes` over a block's first ``steps`` optimizer steps (of any optimizer), then off: the
    block runs at full speed after them, and :attr:`peak_bytes` keeps their peak."""

    def __init__(self, held: Iterable[torch.Tensor] = (), steps: int = STEPS):
        self.meter = LiveTensorBytes(held)
        self.steps_left = steps
        self._hook: Optional[Any] = None
        self._counting = False

    @property
    def peak_bytes(self) -> int:
        return self.meter.peak_bytes

    def __enter__(self) -> FirstSteps:
        self.meter.__enter__()
        self._counting = True
        self._hook = register_optimizer_step_post_hook(self._after_step)
        return self

    def __exit__(self, *exc) -> None:
        self._stop()

    def _after_step(self, optimizer, args, kwargs) -> None:
        self.steps_left -= 1
        if self.steps_left <= 0:
            self._stop()

    def _stop(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self._counting:
            self._counting = False
            self.meter.__exit__(None, None, None)
