"""A federated run's parties, built from params: the clients' local trainer, the clients, the server.

Every engine builds them here, so the in-process clients, a Flower ClientApp and a Flower ServerApp train and
aggregate with the same objects: :func:`local_trainer` is what any client trains with (the strategy's client
half, the codec, error feedback), :func:`federation` adds the clients and the server (the strategy's server
half, DP-FedAvg's noisy mean).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

import numpy as np
import torch

from pipeline.config.schema import SharedParams
from pipeline.data.prepared import TaskData
from pipeline.models.classifier import Classifier
from pipeline.models.reuse import classifier_with
from pipeline.paradigms.federated import PARADIGM
from pipeline.paradigms.federated.batched import BatchedClients, cannot_batch
from pipeline.paradigms.federated.client import Client, LocalTrainer, make_clients
from pipeline.paradigms.federated.layout import StateLayout
from pipeline.paradigms.federated.privacy import PrivateMean
from pipeline.paradigms.federated.server import Server
from pipeline.paradigms.federated.strategies import Strategy, build_strategy
from pipeline.paradigms.federated.wire import Codec
from pipeline.seeding import rng_for, seed_everything

STAGE = PARADIGM.stage


def local_trainer(
    params: SharedParams, model: Classifier, num_classes: int, strategy: str, num_clients: int
) -> tuple[LocalTrainer, Strategy]:
    """The trainer a client trains ``model`` with under ``strategy`` (its client half, the codec), and the
    strategy, whose server half and message layout the server needs."""
    cfg = params.federated
    layout = StateLayout.of(model)
    codec = Codec(cfg.compression, layout, cfg.topk_fraction)
    chosen = build_strategy(strategy, cfg, layout, num_clients)
    trainer = LocalTrainer(
        model,
        num_classes,
        params.trainer_for(STAGE),
        codec,
        cfg.local_batch_size,
        objective=chosen.client_half(),
        down_parts=tuple(chosen.down_parts()),
        error_feedback=cfg.error_feedback,
    )
    return trainer, chosen


def make_server(
    params: SharedParams, trainer: LocalTrainer, chosen: Strategy, variant: str, num_clients: int
) -> Server:
    """The server, holding the trainer's current weights as the global model."""
    private_mean = _private_mean(params, variant, num_clients)
    return Server(trainer.weights(), trainer.codec, chosen.server_half(), tuple(chosen.up_parts()), private_mean)


@dataclass
class Federation:
    """One federated run's parties: the clients' shared trainer (and its model), the clients, the server; and
    how the clients train (:attr:`client_training`, and why not batched when ``federated.batched`` asked for it)."""

    model: Classifier
    layout: StateLayout
    trainer: LocalTrainer
    clients: list[Client]
    server: Server
    batched: Optional[BatchedClients] = None  # the clients train in groups at once; None: one after another
    not_batched: Optional[str] = None

    @property
    def client_training(self) -> str:
        return "sequential" if self.batched is None else "batched"

    @property
    def engine(self) -> Union[LocalTrainer, BatchedClients]:
        """What trains a round's clients (:meth:`LocalTrainer.rounds`)."""
        return self.trainer if self.batched is None else self.batched


def federation(
    params: SharedParams, data: TaskData, assignment: np.ndarray, strategy: str, start: dict, variant: str
) -> Federation:
    """The clients that ``assignment`` makes, and a server, both halves of ``strategy``, from the weights ``start``."""
    cfg = params.federated
    seed_everything(params.seed)
    model = classifier_with(params.model, data, start)
    num_clients = int(assignment.max()) + 1
    trainer, chosen = local_trainer(params, model, data.num_classes, strategy, num_clients)
    clients = make_clients(data.X["train"], data.y["train"], assignment, trainer.device)
    server = make_server(params, trainer, chosen, variant, len(clients))
    wants_batches = cfg.engine == "inprocess" and cfg.batched
    not_batched = cannot_batch(trainer.objective, trainer.precision) if wants_batches else None
    batched = BatchedClients(trainer, cfg.clients_per_batch) if wants_batches and not_batched is None else None
    return Federation(model, trainer.layout, trainer, clients, server, batched, not_batched)


def round_rng(params: SharedParams, variant: str) -> np.random.Generator:
    """What draws each round's sampled clients, dropouts and shuffling seeds in the run of ``variant``
    (``<partition>/<strategy>``): one stream whichever engine, or deployment, runs the rounds."""
    return rng_for(params.seed, f"{STAGE}/{variant}")


def _private_mean(
    params: SharedParams, variant: str, num_clients: int
) -> Optional[Callable[[torch.Tensor], PrivateMean]]:
    """DP-FedAvg's noisy mean when ``federated.dp.enabled``, else None (FedAvg's weighted mean)."""
    cfg = params.federated
    if not cfg.dp.enabled:
        return None
    dp, expected = cfg.dp, cfg.client_fraction * num_clients
    noise = torch.Generator().manual_seed(int(rng_for(params.seed, f"{STAGE}/{variant}/dp").integers(2**62)))
    return lambda start: PrivateMean(start, dp.clip_norm, dp.noise_multiplier, expected, noise)
