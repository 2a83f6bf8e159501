"""Measured peak memory during a block of work.

On a CUDA device: the peak of ``torch.cuda.max_memory_allocated`` (tensors the caching
allocator handed out). On CPU: the peak increase of the process's resident memory over its
level at the start, sampled by a background thread; it includes more than model state
(activations, allocator slack, library buffers).
"""

from __future__ import annotations

import threading

import psutil
import torch


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
