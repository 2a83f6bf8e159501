"""How many CPU threads torch uses in a stage's process (``trainer.num_threads``).

torch's default, one thread per core, loses badly when other processes want the cores (a laptop, a CI
runner, a shared server): its threads wait on each other at every operation, and a step of the small models
this pipeline trains gets several times slower. One thread is about as fast on an idle machine for them,
and gives the same numbers on any machine (the thread count changes floating-point summation order, so
results are reproducible at a fixed count only). Measured in ``benchmarks/threads.py``.
"""

from __future__ import annotations

import os
from typing import Literal, Union

ALL = "all"


def use_threads(num_threads: Union[Literal["all"], int]) -> int:
    """Set torch's intra-op thread count for this process; the count now in use."""
    import torch

    wanted = (os.cpu_count() or 1) if num_threads == ALL else num_threads
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    return torch.get_num_threads()
