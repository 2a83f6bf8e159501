"""The server: holds the global model, sends it out, aggregates what comes back.

It never sees an example or a label: :meth:`Server.receive` takes a client's message (bytes
of the agreed layout, refused otherwise) and its sample count, nothing else. The strategy's
server half (:mod:`pipeline.paradigms.federated.strategies`) decides what else it sends and how
the clients' sample-weighted mean becomes the next global model.
"""

from __future__ import annotations

from typing import Callable, Optional, Union

import torch

from pipeline.paradigms.federated.privacy import PrivateMean
from pipeline.paradigms.federated.strategies import ServerHalf
from pipeline.paradigms.federated.wire import Codec, Part, from_bytes, to_bytes


def check_sample_count(count: int) -> None:
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"a client's sample count is a positive int, got {count!r}")


class WeightedMean:
    """Sum of ``count x vector`` in float64, so integer weights are exact: n identical vectors average to that
    vector."""

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


RoundMean = Union[WeightedMean, PrivateMean]


class Server:
    """``half``: the strategy's server half; ``up_parts``: what a client sends after its update.
    ``private_mean(start)``, when given, replaces FedAvg's weighted mean by DP-FedAvg's noisy one."""

    def __init__(
        self,
        initial: torch.Tensor,
        codec: Codec,
        half: Optional[ServerHalf] = None,
        up_parts: tuple[Part, ...] = (),
        private_mean: Optional[Callable[[torch.Tensor], PrivateMean]] = None,
    ):
        self.global_ = initial.detach().float().cpu().clone()
        self.codec = codec
        self.half = half or ServerHalf()
        self._private_mean = private_mean
        self._update_parts = len(codec.kinds())
        self._kinds = codec.kinds() + list(up_parts)
        self._round = self._new_round()
        self._reports = 0
        self._message: bytes | None = None
        self.clipped = 0  # DP: how many of the last round's updates were clipped

    def _new_round(self) -> RoundMean:
        return self._private_mean(self.global_) if self._private_mean else WeightedMean(self.global_.numel())

    def broadcast(self) -> bytes:
        """The global model (and what the strategy adds) as sent to each sampled client: the same bytes all round."""
        if self._message is None:
            self._message = to_bytes([self.global_, *self.half.message()])
        return self._message

    def receive(self, message: bytes, num_samples: int) -> None:
        """One client's update and how many examples it trained on (checked even where the mean ignores it)."""
        check_sample_count(num_samples)
        parts = from_bytes(message, self._kinds)
        self._round.add(self.codec.decode(parts[: self._update_parts], self.global_), num_samples)
        self.half.receive(parts[self._update_parts :], num_samples)
        self._reports += 1

    def close_round(self) -> int:
        """Aggregate this round's updates; with none (every client dropped out) the global model stays as it was,
        except under differential privacy, whose noise is added every round.

        Returns how many clients reported.
        """
        reported = self._reports
        if reported or self._private_mean:
            self.global_ = self.half.step(self.global_, self._round.mean())
            self._message = None
        self.half.close_round(reported)
        self.clipped = getattr(self._round, "clipped", 0)
        self._round, self._reports = self._new_round(), 0
        return reported
