"""Wall-clock readings for timing training: on a GPU, taken once the device's queued work is done."""

from __future__ import annotations

import time

import torch


def now(device: torch.device) -> float:
    """``time.perf_counter()`` after waiting for ``device`` (CUDA runs asynchronously; a CPU needs no wait)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
