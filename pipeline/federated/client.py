"""Clients: each holds its own examples; all borrow one local trainer in turn.

The simulation runs clients one after another in one process. Building a model, a
LightningModule, a Fabric and an optimizer per client per round would cost more than a
small client's training, so one :class:`LocalTrainer` is built per run and each client
resets it to the global weights (and a fresh optimizer state) before training on its data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import torch
from lightning.fabric import Fabric
from torch import nn

from pipeline.config.schema import TrainerConfig
from pipeline.federated.layout import StateLayout
from pipeline.federated.wire import Codec, from_bytes, to_bytes
from pipeline.models.lightning_module import ClassificationModule

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class LocalTraining:
    seconds: float  # the local training itself: the compute a simulation cannot avoid
    loss: float  # mean training loss over its batches (FedProx's term excluded)


@dataclass
class Client:
    """One client's private training data; it never leaves the client, only updates do."""

    id: int
    X: torch.Tensor
    y: torch.Tensor
    residual: Optional[torch.Tensor] = None  # error feedback: what lossy compression left out of its last update

    def __len__(self) -> int:
        return len(self.y)

    def class_shares(self, num_classes: int) -> np.ndarray:
        counts = np.bincount(self.y.cpu().numpy(), minlength=num_classes)
        return counts / counts.sum()

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        """One shuffled pass; a lone last example joins the batch before (batch norm cannot train on one)."""
        order = torch.randperm(len(self), generator=generator).to(self.X.device)
        cuts = list(range(0, len(self), batch_size)) + [len(self)]
        if len(cuts) > 2 and cuts[-1] - cuts[-2] == 1:
            del cuts[-2]
        for lo, hi in zip(cuts, cuts[1:]):
            take = order[lo:hi]
            yield self.X[take], self.y[take]


def make_clients(X: np.ndarray, y: np.ndarray, assignment: np.ndarray, device: torch.device) -> list[Client]:
    """Client ``k`` gets the examples whose ``assignment`` is ``k`` (a partition ``prepare`` wrote)."""
    X_all, y_all = torch.from_numpy(X).to(device), torch.from_numpy(y).to(device)
    return [Client(k, X_all[idx], y_all[idx]) for k, idx in enumerate(_members(assignment))]


def _members(assignment: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(np.nonzero(assignment == k)[0]) for k in range(int(assignment.max()) + 1)]


class LocalTrainer:
    """The project's LightningModule on a Fabric device, trained by one client at a time.

    ``prox_mu`` > 0 adds FedProx's proximal term, (mu / 2) ||w - w_global||^2, to each local loss.
    """

    def __init__(
        self, model: nn.Module, num_classes: int, cfg: TrainerConfig, codec: Codec, batch_size: int,
        prox_mu: float = 0.0, error_feedback: bool = True,
    ):
        one_device = cfg.devices if isinstance(cfg.devices, list) and len(cfg.devices) == 1 else 1  # clients take turns
        self.fabric = Fabric(accelerator=cfg.accelerator, devices=one_device, precision=cfg.precision)
        self.module = ClassificationModule(model, num_classes, cfg)
        self.wrapped = self.fabric.setup_module(self.module)
        self.optimizer = self.fabric.setup_optimizers(self.module.configure_optimizers())
        self.layout: StateLayout = codec.layout
        self.codec = codec
        self.batch_size = batch_size
        self.prox_mu = prox_mu
        self.error_feedback = error_feedback and codec.lossy
        self.flat = self.layout.bind_flat(model)  # the model's weights and statistics, as one vector
        self.params = [p for p in model.parameters() if p.requires_grad]

    @property
    def device(self) -> torch.device:
        return self.fabric.device

    def start_from(self, weights: torch.Tensor) -> None:
        """The global weights, and an optimizer with no state (each local training starts afresh)."""
        with torch.no_grad():
            self.flat.copy_(weights)
        self.optimizer.optimizer.state.clear()

    def weights(self) -> torch.Tensor:
        return self.flat.detach().cpu().clone()

    def round(self, client: Client, message: bytes, epochs: int, generator: torch.Generator) -> tuple[bytes, LocalTraining]:
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

    def train(self, client: Client, generator: torch.Generator, epochs: Optional[int] = None, steps: Optional[int] = None) -> LocalTraining:
        """``epochs`` passes over the client's data, or ``steps`` batches."""
        if not self.module.training:
            self.wrapped.train()  # walking the module tree costs as much as a small client's step: only after an evaluation
        started = self._now()
        anchor = [p.detach().clone() for p in self.params] if self.prox_mu else []
        total, batches = torch.zeros((), device=self.device), 0
        for i, batch in enumerate(self._schedule(client, generator, epochs, steps)):
            loss = self.wrapped.training_step(batch, i)
            total += loss.detach()
            batches += 1
            if anchor:
                loss = loss + self.prox_mu / 2 * sum(((p - a) ** 2).sum() for p, a in zip(self.params, anchor))
            self.optimizer.zero_grad(set_to_none=True)
            self.fabric.backward(loss)
            self.optimizer.step()
        mean_loss = float(total) / max(batches, 1)  # one device sync per client, not per step
        return LocalTraining(self._now() - started, mean_loss)

    def _schedule(self, client: Client, generator: torch.Generator, epochs: Optional[int], steps: Optional[int]) -> Iterator[Batch]:
        if epochs is not None:
            for _ in range(epochs):
                yield from client.batches(self.batch_size, generator)
            return
        done = 0
        while done < (steps or 0):
            for batch in client.batches(self.batch_size, generator):
                yield batch
                done += 1
                if done == steps:
                    return

    @torch.no_grad()
    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """Logits of the current weights (evaluation mode), on the CPU."""
        self.wrapped.eval()
        with self.fabric.autocast():
            return self.module(X.to(self.device)).float().cpu()

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()
