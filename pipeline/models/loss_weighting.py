"""How a multi-task model combines its tasks' losses into the one it minimises.

- ``fixed``: ``sum_i w_i L_i`` with the weights declared per task;
- ``uncertainty``: learned homoscedastic uncertainty weighting (Kendall, Gal & Cipolla,
  CVPR 2018). Each task has a learned ``s_i = log sigma_i^2``; the loss for classification is
  ``sum_i exp(-s_i) L_i + s_i / 2``. A task whose loss stays high (noisy, hard) gets a larger
  sigma and so a smaller weight; the ``s_i / 2`` term stops every sigma from growing without
  bound. ``s_i`` starts at ``-log w_i``, so the declared weights are the starting weights.

Either way :meth:`LossWeighting.weights` gives the effective weight of each task's loss
(``w_i`` or ``exp(-s_i)``), logged per epoch.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LossWeighting(nn.Module):
    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        """The combined loss from one loss per task (a 1-D tensor, in task order)."""
        raise NotImplementedError

    def weights(self) -> torch.Tensor:
        """The effective weight of each task's loss, detached."""
        raise NotImplementedError


class FixedWeighting(LossWeighting):
    def __init__(self, weights: list[float]):
        super().__init__()
        self.register_buffer("fixed", torch.tensor(weights, dtype=torch.float32))

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        return (self.fixed * losses).sum()

    def weights(self) -> torch.Tensor:
        return self.fixed.detach().clone()


class UncertaintyWeighting(LossWeighting):
    def __init__(self, weights: list[float]):
        super().__init__()
        self.log_variance = nn.Parameter(torch.tensor([-math.log(w) for w in weights], dtype=torch.float32))

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        return (torch.exp(-self.log_variance) * losses + 0.5 * self.log_variance).sum()

    def weights(self) -> torch.Tensor:
        return torch.exp(-self.log_variance.detach())


WEIGHTINGS = {"fixed": FixedWeighting, "uncertainty": UncertaintyWeighting}


def build_weighting(kind: str, weights: list[float]) -> LossWeighting:
    return WEIGHTINGS[kind](weights)
