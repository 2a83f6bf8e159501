"""The rounds of federated training: sample clients, send the model, collect updates, aggregate.

Each round the server's message goes to a ``client_fraction`` of the clients; each of them
may drop out (``client_dropout``) and never report, in which case its download still counts.
The round proceeds with those that report; with none the global model stays as it was.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from pipeline.paradigms.federated.client import Client, LocalTrainer
from pipeline.paradigms.federated.config import FederatedConfig
from pipeline.paradigms.federated.server import Server


@dataclass
class RoundRecord:
    round: int
    clients_sampled: int
    clients_reported: int
    bytes_down: int  # the global model, once per sampled client
    bytes_up: int  # the encoded updates of the clients that reported
    seconds: float  # the round's wall time, evaluation excluded
    local_seconds: float  # of which the clients' local training
    local_samples: int  # examples processed in local training
    train_loss: float  # the reporting clients' mean local loss, weighted by their examples (nan if none reported)
    clients_clipped: int = 0  # differential privacy: updates clipped to dp.clip_norm

    def as_metrics(self) -> dict[str, float]:
        """The tracking contract's ``train/loss`` and the round's own figures (a round without reports has no loss)."""
        out = {
            f"round/{k}": float(v)
            for k, v in asdict(self).items()
            if k not in ("round", "train_loss", "clients_clipped")
        }
        return out | ({"train/loss": self.train_loss} if self.clients_reported else {})


def clients_per_round(cfg: FederatedConfig, num_clients: int) -> int:
    """How many clients a round samples (on average, under differential privacy)."""
    return max(1, round(cfg.client_fraction * num_clients))


def sample_clients(cfg: FederatedConfig, num_clients: int, rng: np.random.Generator) -> np.ndarray:
    """A fixed number of distinct clients; under differential privacy each independently with
    probability ``client_fraction`` (Poisson sampling, as the privacy accountant assumes)."""
    if cfg.dp.enabled:
        return np.nonzero(rng.random(num_clients) < cfg.client_fraction)[0]
    return np.sort(rng.choice(num_clients, size=clients_per_round(cfg, num_clients), replace=False))


def run_rounds(
    server: Server,
    trainer: LocalTrainer,
    clients: list[Client],
    cfg: FederatedConfig,
    rng: np.random.Generator,
    after_round: Callable[[RoundRecord], None],
) -> list[RoundRecord]:
    """``rng`` draws the sampled clients, the dropouts and each client's shuffling seed, so a seed fixes the run."""
    records = []
    for r in range(1, cfg.rounds + 1):
        started = time.perf_counter()
        sampled = sample_clients(cfg, len(clients), rng)
        m = len(sampled)
        dropped = rng.random(m) < cfg.client_dropout
        seeds = rng.integers(2**62, size=m)
        message = server.broadcast()
        up = examples = 0
        local = loss_sum = 0.0
        down = len(message) * m
        reporting = [clients[k] for k, drops in zip(sampled, dropped) if not drops]
        generators = [torch.Generator().manual_seed(int(seed)) for seed, drops in zip(seeds, dropped) if not drops]
        for client, reply, done in trainer.rounds(reporting, message, cfg.local_epochs, generators):
            server.receive(reply, len(client))
            up += len(reply)
            local += done.seconds
            examples += len(client)
            loss_sum += done.loss * len(client)
        reported = server.close_round()
        loss = loss_sum / examples if examples else float("nan")
        record = RoundRecord(
            r,
            m,
            reported,
            down,
            up,
            time.perf_counter() - started,
            local,
            cfg.local_epochs * examples,
            loss,
            server.clipped,
        )
        records.append(record)
        after_round(record)
    return records
