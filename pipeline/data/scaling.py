"""Input scaling (``data.scale``), fitted on the source task's training split and applied to every split.

The statistics come from training examples only (no test split of any task holds one of them), so
no test example leaks into the inputs' scale; ``prepare`` saves them (``data/prepared/scaling.npz``)
so a model's inputs at inference are scaled as its training inputs were:
``x' = (x - shift) / divisor``.

- ``max``: divide by the largest absolute value (images land in [0, 1]);
- ``standard``: per feature, subtract the mean and divide by the standard deviation (a constant
  feature is only centred), the usual choice for signals and tables whose features differ in spread;
- ``none``: as loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data.prepared import read_arrays
from pipeline.io import write_npz

METHODS = ("max", "standard", "none")
SCALING_FILE = "scaling.npz"  # beside the prepared task files


@dataclass(frozen=True)
class Scaling:
    method: str
    shift: np.ndarray  # broadcasts against one example's shape
    divisor: np.ndarray

    def apply(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.shift) / self.divisor).astype(np.float32)

    def save(self, path: str | Path) -> None:
        write_npz(path, method=np.array(self.method), shift=self.shift, divisor=self.divisor)

    def invert(self, X: np.ndarray) -> np.ndarray:
        """Inputs back in the dataset's own units (what a served model takes)."""
        return X.astype(np.float64) * self.divisor + self.shift

    @classmethod
    def beside(cls, task_file: str | Path) -> Scaling:
        """The scaling ``prepare`` saved with the prepared task file ``task_file``."""
        return cls.load(Path(task_file).parent / SCALING_FILE)

    @classmethod
    def load(cls, path: str | Path) -> Scaling:
        arrays = read_arrays(path)
        return cls(str(arrays["method"]), arrays["shift"], arrays["divisor"])


def fit_scaling(method: str, X_train: np.ndarray) -> Scaling:
    """The ``method``'s statistics from ``X_train`` (training inputs only)."""
    one = np.ones((), dtype=np.float32)
    if method == "none":
        return Scaling(method, np.zeros((), dtype=np.float32), one)
    if method == "max":
        peak = np.float32(np.abs(X_train).max())
        return Scaling(method, np.zeros((), dtype=np.float32), np.asarray(peak if peak > 0 else one))
    if method == "standard":
        mean, std = X_train.mean(axis=0, dtype=np.float64), X_train.std(axis=0, dtype=np.float64)
        return Scaling(method, mean.astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32))
    raise ValueError(f"unknown scaling '{method}'; one of {', '.join(METHODS)}")
