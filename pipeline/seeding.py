"""One ``seed`` drives every random choice.

Each purpose (a split, the noise, a partition) gets its own generator derived from the
seed and the purpose's name, so adding a new random step never shifts an existing one.
"""

from __future__ import annotations

import zlib

import numpy as np


def rng_for(seed: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(purpose.encode())])
