"""One ``seed`` drives every random choice.

Data choices (a split, the noise, a partition) each get their own NumPy generator derived
from the seed and the purpose's name, so adding a new random step never shifts an existing
one. Torch's global generators (initial weights, dropout, shuffling) are seeded with
:func:`seed_everything` before a model is built and again before it is fitted: torch seeds
itself randomly at start-up, so nothing may be drawn from it before.
"""

from __future__ import annotations

import zlib

import numpy as np


def rng_for(seed: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(purpose.encode())])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (and loader workers) for a deterministic build or fit."""
    import lightning.pytorch as pl  # here, not above: a stage that only draws from rng_for (prepare) starts faster

    pl.seed_everything(seed, workers=True, verbose=False)
