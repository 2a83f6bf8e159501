"""The rounds of federated training: sample clients, send the model, collect updates, aggregate.

Each round the server's message goes to a ``client_fraction`` of the clients; each of them
may drop out (``client_dropout``) and never report, in which case its download still counts.
The round proceeds with those that report; with none the global model stays as it was.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable, Union

import numpy as np
import torch

from pipeline.paradigms.federated.batched import BatchedClients
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


@dataclass
class RoundPlan:
    """Who a round asks (``sampled``), who of them never reports (``dropped``), and each one's shuffling seed:
    every engine draws them from the run's ``rng`` in this order, so a seed fixes the same clients everywhere."""

    sampled: np.ndarray
    dropped: np.ndarray
    seeds: np.ndarray

    @classmethod
    def draw(cls, cfg: FederatedConfig, num_clients: int, rng: np.random.Generator) -> "RoundPlan":
        sampled = sample_clients(cfg, num_clients, rng)
        dropped = rng.random(len(sampled)) < cfg.client_dropout
        return cls(sampled, dropped, rng.integers(2**62, size=len(sampled)))

    def reporting(self) -> list[tuple[int, int]]:
        """``(client, seed)`` of each sampled client that does not drop out, in client order."""
        return [(int(k), int(seed)) for k, seed, drops in zip(self.sampled, self.seeds, self.dropped) if not drops]


class RoundTally:
    """One round's figures as the replies reach the server: every engine feeds it the same way."""

    def __init__(self, round_: int, plan: RoundPlan, message: bytes):
        self.round, self.started = round_, time.perf_counter()
        self.sampled, self.down = len(plan.sampled), len(message) * len(plan.sampled)
        self.up = self.examples = 0
        self.local = self.loss_sum = 0.0

    def reply(self, server: Server, reply: bytes, examples: int, seconds: float, loss: float) -> None:
        """A client's encoded update and how it trained: aggregated, and counted."""
        server.receive(reply, examples)
        self.up += len(reply)
        self.local += seconds
        self.examples += examples
        self.loss_sum += loss * examples

    def close(self, server: Server, local_epochs: int) -> RoundRecord:
        reported = server.close_round()
        loss = self.loss_sum / self.examples if self.examples else float("nan")
        return RoundRecord(
            self.round,
            self.sampled,
            reported,
            self.down,
            self.up,
            time.perf_counter() - self.started,
            self.local,
            local_epochs * self.examples,
            loss,
            server.clipped,
        )


def run_rounds(
    server: Server,
    trainer: Union[LocalTrainer, BatchedClients],
    clients: list[Client],
    cfg: FederatedConfig,
    rng: np.random.Generator,
    after_round: Callable[[RoundRecord], None],
) -> list[RoundRecord]:
    """The in-process engine. ``rng`` draws the sampled clients, the dropouts and each client's shuffling seed
    (:class:`RoundPlan`), so a seed fixes the run."""
    records = []
    for r in range(1, cfg.rounds + 1):
        plan = RoundPlan.draw(cfg, len(clients), rng)
        message = server.broadcast()
        tally = RoundTally(r, plan, message)
        reporting = plan.reporting()
        generators = [torch.Generator().manual_seed(seed) for _, seed in reporting]
        for client, reply, done in trainer.rounds(
            [clients[k] for k, _ in reporting], message, cfg.local_epochs, generators
        ):
            tally.reply(server, reply, len(client), done.seconds, done.loss)
        records.append(tally.close(server, cfg.local_epochs))
        after_round(records[-1])
    return records
