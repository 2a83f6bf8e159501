"""Differential privacy for federated averaging (DP-FedAvg, McMahan et al. 2018), with its accounting.

With ``federated.dp.enabled`` each round samples every client independently with probability
``client_fraction`` (Poisson sampling, which the accountant's analysis assumes), clips each
reporting client's change to L2 norm ``clip_norm``, averages the changes with equal weights
over the *expected* number of clients, and adds Gaussian noise of standard deviation
``noise_multiplier x clip_norm`` to their sum. No single client can then move the model by
more than the noise hides: the guarantee is user-level (one client, all its examples).
Opacus's RDP accountant turns the rounds, the sampling rate and the noise multiplier into the
(epsilon, delta) spent so far. The noise is added by the server (central DP: the server is
trusted with the clipped updates, the released models are private), and it is added in every
round, even one where no client reported, since the guarantee needs it.
"""

from __future__ import annotations

import torch
from opacus.accountants import RDPAccountant


class PrivateMean:
    """The next global weights from clipped, equally weighted client changes plus Gaussian noise."""

    def __init__(
        self,
        start: torch.Tensor,
        clip_norm: float,
        noise_multiplier: float,
        expected_clients: float,
        generator: torch.Generator,
    ):
        self.start = start
        self.clip_norm = clip_norm
        self.noise_multiplier = noise_multiplier
        self.expected_clients = expected_clients
        self.generator = generator
        self.total = torch.zeros_like(start, dtype=torch.float64)
        self.clipped = 0

    def add(self, weights: torch.Tensor, count: int) -> None:
        """``count`` is ignored: every client weighs the same, so none can outweigh the noise."""
        change = (weights - self.start).double()
        norm = float(change.norm())
        if norm > self.clip_norm:
            change *= self.clip_norm / norm
            self.clipped += 1
        self.total += change

    def mean(self) -> torch.Tensor:
        noise = torch.randn(self.start.shape, generator=self.generator, dtype=torch.float64) * (
            self.noise_multiplier * self.clip_norm
        )
        return (self.start.double() + (self.total + noise) / self.expected_clients).float()


class PrivacyAccountant:
    """(epsilon, delta) spent by the rounds so far, from Opacus's Rényi-DP accountant for the subsampled Gaussian."""

    def __init__(self, noise_multiplier: float, sample_rate: float, delta: float):
        self.noise_multiplier, self.sample_rate, self.delta = noise_multiplier, sample_rate, delta
        self._accountant = RDPAccountant()

    def spend_round(self) -> float:
        """Account one round; returns epsilon so far."""
        self._accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)
        return float(self._accountant.get_epsilon(delta=self.delta))
