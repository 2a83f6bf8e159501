"""Synthetic 1-D signals for tests: the class is which short motif appears, at a random place, in noise.

The motifs are square waves of one width and different frequencies, all zero-mean with equal
energy, so neither the signal's mean nor its power tells the classes apart and, the place being
random, no single input position does either: a convolution that slides along the signal finds
the motif, a model that reads each position on its own has little to hold on to.
"""

from __future__ import annotations

import numpy as np

MOTIF_WIDTH = 8


def motifs(classes: int, width: int = MOTIF_WIDTH) -> np.ndarray:
    """``classes`` × ``width`` square waves of ±1: class k flips sign every 2**k samples (+1 -1 +1 -1 ..., +1 +1 -1
    -1 ..., ...)."""
    if classes < 2 or 2**classes > width:
        raise ValueError(f"{classes} classes need motifs at least {2**classes} wide, got {width}")
    positions = np.arange(width)
    return np.stack([np.where((positions // 2**k) % 2 == 0, 1.0, -1.0) for k in range(classes)])


def motif_signals(
    n: int, length: int, classes: int = 2, channels: int | None = None, noise: float = 0.5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` signals (N×L, or N×C×L with ``channels``) and their labels; each holds its class's motif, with a random
    sign at a random place (on one random channel), in Gaussian noise of std ``noise``."""
    rng = np.random.default_rng(seed)
    shapes = motifs(classes)
    y = rng.integers(0, classes, n)
    X = rng.normal(0.0, noise, size=(n, channels or 1, length))
    starts = rng.integers(0, length - MOTIF_WIDTH + 1, n)
    rows = rng.integers(0, channels or 1, n)
    signs = rng.choice([-1.0, 1.0], n)
    for i in range(n):
        X[i, rows[i], starts[i] : starts[i] + MOTIF_WIDTH] += signs[i] * shapes[y[i]]
    return (X if channels else X[:, 0]).astype(np.float32), y
