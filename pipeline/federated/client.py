"""Clients: each holds its own examples; all borrow one local trainer in turn.

The simulation runs clients one after another in one process. One :class:`LocalTrainer` (an
:class:`~pipeline.training.in_memory.InMemoryTrainer`) is built per run and each client
resets it to the global weights (and a fresh optimizer state) before training on its data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn

from pipeline.config.schema import TrainerConfig
from pipeline.federated.layout import StateLayout
from pipeline.federated.wire import Codec, from_bytes, to_bytes
from pipeline.training.in_memory import Batches, InMemoryTrainer, TrainingPass


@dataclass
class Client(Batches):
    """One client's private training data; it never leaves the client, only updates do."""

    id: int
    X: torch.Tensor
    y: torch.Tensor
    residual: Optional[torch.Tensor] = None  # error feedback: what lossy compression left out of its last update

    def class_shares(self, num_classes: int) -> np.ndarray:
        counts = np.bincount(self.y.cpu().numpy(), minlength=num_classes)
        return counts / counts.sum()


def make_clients(X: np.ndarray, y: np.ndarray, assignment: np.ndarray, device: torch.device) -> list[Client]:
    """Client ``k`` gets the examples whose ``assignment`` is ``k`` (a partition ``prepare`` wrote)."""
    X_all, y_all = torch.from_numpy(X).to(device), torch.from_numpy(y).to(device)
    return [Client(k, X_all[idx], y_all[idx]) for k, idx in enumerate(_members(assignment))]


def _members(assignment: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(np.nonzero(assignment == k)[0]) for k in range(int(assignment.max()) + 1)]


class LocalTrainer(InMemoryTrainer):
    """The trainer every client borrows: starts from the server's weights, answers with an encoded update.

    ``prox_mu`` > 0 adds FedProx's proximal term, (mu / 2) ||w - w_global||^2, to each local loss.
    """

    def __init__(
        self, model: nn.Module, num_classes: int, cfg: TrainerConfig, codec: Codec, batch_size: int,
        prox_mu: float = 0.0, error_feedback: bool = True,
    ):
        super().__init__(model, num_classes, cfg, batch_size)
        self.layout: StateLayout = codec.layout
        self.codec = codec
        self.prox_mu = prox_mu
        self.error_feedback = error_feedback and codec.lossy
        self.flat = self.layout.bind_flat(model)  # the model's weights and statistics, as one vector
        self._anchor: list[torch.Tensor] = []

    def start_from(self, weights: torch.Tensor) -> None:
        """The global weights, and an optimizer with no state (each local training starts afresh)."""
        with torch.no_grad():
            self.flat.copy_(weights)
        self.reset_optimizer()

    def weights(self) -> torch.Tensor:
        return self.flat.detach().cpu().clone()

    def round(self, client: Client, message: bytes, epochs: int, generator: torch.Generator) -> tuple[bytes, TrainingPass]:
        """What a client does with the server's message: train on its data, answer with its encoded update."""
        start = from_bytes(message, [(torch.float32, self.layout.numel)])[0]
        self.start_from(start)
        done = self.train(client, generator, epochs=epochs)
        return to_bytes(self.encode(client, self.weights(), start)), done

    def encode(self, client: Client, weights: torch.Tensor, start: torch.Tensor) -> list[torch.Tensor]:
        """The client's update; with error feedback, what compression dropped last time is added back
        (Stich et al. 2018), so no part of a change is lost for good, only delayed."""
        if not self.error_feedback:
            return self.codec.encode(weights, start)
        meant = weights if client.residual is None else weights + client.residual
        parts = self.codec.encode(meant, start)
        client.residual = meant - self.codec.decode(parts, start)
        return parts

    def train(self, data: Batches, generator: torch.Generator, epochs: Optional[int] = None, steps: Optional[int] = None) -> TrainingPass:
        self._anchor = [p.detach().clone() for p in self.params] if self.prox_mu else []
        return super().train(data, generator, epochs, steps)

    def penalty(self) -> Optional[torch.Tensor]:
        if not self._anchor:
            return None
        return self.prox_mu / 2 * sum(((p - a) ** 2).sum() for p, a in zip(self.params, self._anchor))
