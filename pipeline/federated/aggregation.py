"""How the server turns the clients' weights into the next global model.

Every strategy starts from FedAvg's mean of the client weights, weighted by their sample
counts (McMahan et al. 2017). FedAvg and FedProx take that mean as the new model (FedProx
differs on the client side); FedAdam and FedAvgM treat ``mean - global`` as a pseudo-gradient
for a server optimizer (Reddi et al. 2021; Hsu et al. 2019). Normalisation statistics are
not parameters: they always take the mean.
"""

from __future__ import annotations

from typing import Protocol

import torch

from pipeline.config.schema import FederatedConfig


def check_sample_count(count: int) -> None:
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"a client's sample count is a positive int, got {count!r}")


class WeightedMean:
    """Sum of ``count x vector`` in float64, so integer weights are exact: n identical vectors average to that vector."""

    def __init__(self, numel: int):
        self.total = torch.zeros(numel, dtype=torch.float64)
        self.count = 0

    def add(self, vector: torch.Tensor, count: int) -> None:
        check_sample_count(count)
        self.total.add_(vector.double(), alpha=count)
        self.count += count

    def mean(self) -> torch.Tensor:
        return (self.total / self.count).float()


def fedavg(vectors: list[torch.Tensor], counts: list[int]) -> torch.Tensor:
    """The sample-weighted mean of client weight vectors."""
    mean = WeightedMean(vectors[0].numel())
    for vector, count in zip(vectors, counts):
        mean.add(vector, count)
    return mean.mean()


class ServerStep(Protocol):
    def __call__(self, global_: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """The next global vector from the current one and the clients' weighted mean."""


def take_mean(global_: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    return mean


class FedAvgM:
    def __init__(self, params: torch.Tensor, lr: float, momentum: float):
        self.params, self.lr, self.momentum = params, lr, momentum
        self.velocity = torch.zeros(int(params.sum()))

    def __call__(self, global_: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        change = (mean - global_)[self.params]
        self.velocity.mul_(self.momentum).add_(change)
        out = mean.clone()
        out[self.params] = global_[self.params] + self.lr * self.velocity
        return out


class FedAdam:
    def __init__(self, params: torch.Tensor, lr: float, beta1: float, beta2: float, tau: float):
        self.params, self.lr, self.beta1, self.beta2, self.tau = params, lr, beta1, beta2, tau
        n = int(params.sum())
        self.m, self.v = torch.zeros(n), torch.zeros(n)

    def __call__(self, global_: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        change = (mean - global_)[self.params]
        self.m.mul_(self.beta1).add_(change, alpha=1 - self.beta1)
        self.v.mul_(self.beta2).addcmul_(change, change, value=1 - self.beta2)
        out = mean.clone()
        out[self.params] = global_[self.params] + self.lr * self.m / (self.v.sqrt() + self.tau)
        return out


def build_server_step(strategy: str, cfg: FederatedConfig, params: torch.Tensor) -> ServerStep:
    """``params``: the vector's positions that hold parameters (:meth:`StateLayout.param_mask`)."""
    if strategy in ("fedavg", "fedprox"):
        return take_mean
    if strategy == "fedavgm":
        return FedAvgM(params, cfg.fedavgm.lr, cfg.fedavgm.momentum)
    if strategy == "fedadam":
        s = cfg.fedadam
        return FedAdam(params, s.lr, s.beta1, s.beta2, s.tau)
    raise ValueError(f"unknown federated strategy {strategy!r}")
