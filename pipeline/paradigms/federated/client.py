"""Clients: each holds its own examples; all borrow one local trainer in turn.

The simulation runs clients one after another in one process. One :class:`LocalTrainer` (an
:class:`~pipeline.training.in_memory.InMemoryTrainer`) is built per run and each client
resets it to the global weights (and a fresh optimizer state) before training on its data.
:class:`ClientHalf` is what the trainer calls of a strategy's local objective; the strategies
(:mod:`~pipeline.paradigms.federated.strategies`) implement it, and the batched engine builds on the trainer:
the client knows neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterator, Optional

import numpy as np
import torch
from torch import nn

from pipeline.config.schema import TrainerConfig
from pipeline.paradigms.federated.layout import StateLayout
from pipeline.paradigms.federated.wire import Codec, Part, from_bytes, to_bytes
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


class ClientHalf:
    """A client's local objective, the client half of a strategy (:mod:`~pipeline.paradigms.federated.strategies`).

    This base is FedAvg's client: plain local training, and nothing sent besides the update.

    Unless ``not_batched`` says why not, the hooks also serve many clients trained as one computation
    (:mod:`~pipeline.paradigms.federated.batched`): they then see the stacked weights (a leading client axis),
    and :meth:`on_message` and :meth:`reply` keep no state of their own.
    """

    not_batched: ClassVar[Optional[str]] = None

    def on_message(self, trainer: LocalTrainer, client: Client, extras: list[torch.Tensor]) -> None:
        """A round's message arrived (``trainer`` holds the global weights): prepare this client's local training."""

    def on_train_start(self, trainer: LocalTrainer) -> None:
        """Local training starts from the trainer's current weights (a round, or personalisation)."""

    def penalty(self, params: list[torch.Tensor]) -> Optional[torch.Tensor]:
        """A term added to each local step's loss."""
        return None

    def correct_gradients(self) -> None:
        """Change the gradients of each local step before the optimizer applies them."""

    def reply(self, trainer: LocalTrainer, client: Client) -> list[torch.Tensor]:
        """What the client sends after its update (a strategy's ``up_parts``)."""
        return []

    def client_state(self, client: Client) -> Optional[torch.Tensor]:
        """What this half keeps for ``client`` between its rounds (None: nothing), for a client that lives in
        another process each round (a Flower ClientApp keeps it in its node's state)."""
        return None

    def restore_client_state(self, client: Client, state: Optional[torch.Tensor]) -> None:
        """Take back what :meth:`client_state` gave for ``client`` (None: the client has none yet)."""


class LocalTrainer(InMemoryTrainer):
    """The trainer every client borrows: starts from the server's weights, answers with an encoded update.

    ``objective``, the strategy's client half, shapes each local training (a loss term, a gradient
    correction) and adds to the answer; ``down_parts``: what a server message carries after the weights.
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        cfg: TrainerConfig,
        codec: Codec,
        batch_size: int,
        objective: Optional[ClientHalf] = None,
        down_parts: tuple[Part, ...] = (),
        error_feedback: bool = True,
    ):
        super().__init__(model, num_classes, cfg, batch_size)
        self.layout: StateLayout = codec.layout
        self.codec = codec
        self.objective = objective or ClientHalf()
        self.error_feedback = error_feedback and codec.lossy
        self.flat = self.layout.bind_flat(model)  # the model's weights and statistics, as one vector
        self._message_kinds = [(torch.float32, self.layout.numel), *down_parts]

    def start_from(self, weights: torch.Tensor) -> None:
        """The global weights, and an optimizer with no state (each local training starts afresh)."""
        with torch.no_grad():
            self.flat.copy_(weights)
        self.reset_optimizer()

    def weights(self) -> torch.Tensor:
        return self.flat.detach().cpu().clone()

    def rounds(
        self, clients: list[Client], message: bytes, epochs: int, generators: list[torch.Generator]
    ) -> Iterator[tuple[Client, bytes, TrainingPass]]:
        """Each client's :meth:`round`, one after another (:class:`~pipeline.paradigms.federated.batched.BatchedClients`
        trains many at once)."""
        for client, generator in zip(clients, generators):
            yield (client, *self.round(client, message, epochs, generator))

    def unpack(self, message: bytes) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The server's message: the global weights, and what the strategy sends besides."""
        start, *extras = from_bytes(message, self._message_kinds)
        return start, extras

    def round(
        self, client: Client, message: bytes, epochs: int, generator: torch.Generator
    ) -> tuple[bytes, TrainingPass]:
        """What a client does with the server's message: train on its data, answer with its encoded update."""
        start, extras = self.unpack(message)
        self.start_from(start)
        self.objective.on_message(self, client, extras)
        done = self.train(client, generator, epochs=epochs)
        update = self.encode(client, self.weights(), start)
        return to_bytes(update + self.objective.reply(self, client)), done

    def encode(self, client: Client, weights: torch.Tensor, start: torch.Tensor) -> list[torch.Tensor]:
        """The client's update; with error feedback, what compression dropped last time is added back
        (Stich et al. 2018), so no part of a change is lost for good, only delayed."""
        if not self.error_feedback:
            return self.codec.encode(weights, start)
        meant = weights if client.residual is None else weights + client.residual
        parts = self.codec.encode(meant, start)
        client.residual = meant - self.codec.decode(parts, start)
        return parts

    def train(
        self, data: Batches, generator: torch.Generator, epochs: Optional[int] = None, steps: Optional[int] = None
    ) -> TrainingPass:
        self.objective.on_train_start(self)
        return super().train(data, generator, epochs, steps)

    def penalty(self) -> Optional[torch.Tensor]:
        return self.objective.penalty(self.params)

    def adjust_gradients(self) -> None:
        self.objective.correct_gradients()

    def gradient_at_start(self, client: Client) -> torch.Tensor:
        """The mean gradient of the client's loss over all its data at the current weights, laid out as the
        weights vector (zero at statistics); the weights, statistics and optimizer are as they were after."""
        start = self.weights()
        self.wrapped.train()
        self.optimizer.zero_grad(set_to_none=True)
        for X, y in client.batches(self.batch_size, torch.Generator().manual_seed(0)):
            self.fabric.backward(self.wrapped.training_step((X, y), 0) * (len(y) / len(client)))
        gradient = torch.zeros(self.layout.numel, device=self.device)
        with torch.no_grad():
            for param, part in self.param_views(gradient):
                part.copy_(param.grad)
        self.start_from(start)  # batch norm's statistics moved in that pass
        self.optimizer.zero_grad(set_to_none=True)
        return gradient.cpu()

    def param_views(self, vector: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each parameter with its slice of ``vector`` (laid out as the weights vector), on the trainer's device
        (views of ``vector`` itself when it is there already)."""
        named = dict(self.model.named_parameters())
        views = self.layout.views(vector.to(self.device))
        return [(named[name], view) for name, view in zip(self.layout.names, views) if name in named]
