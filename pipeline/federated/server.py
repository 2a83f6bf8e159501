"""The server: holds the global model, sends it out, aggregates what comes back.

It never sees an example or a label: :meth:`Server.receive` takes a client's message (bytes
of the agreed layout, refused otherwise) and its sample count, nothing else.
"""

from __future__ import annotations

from typing import Callable, Optional, Union

import torch

from pipeline.federated.aggregation import ServerStep, WeightedMean, check_sample_count
from pipeline.federated.privacy import PrivateMean
from pipeline.federated.wire import Codec, from_bytes, to_bytes

RoundMean = Union[WeightedMean, PrivateMean]


class Server:
    """``private_mean(start)``, when given, replaces FedAvg's weighted mean by DP-FedAvg's noisy one."""

    def __init__(self, initial: torch.Tensor, codec: Codec, step: ServerStep, private_mean: Optional[Callable[[torch.Tensor], PrivateMean]] = None):
        self.global_ = initial.detach().float().cpu().clone()
        self.codec = codec
        self.step = step
        self._private_mean = private_mean
        self._kinds = codec.kinds()
        self._round = self._new_round()
        self._reports = 0
        self._message: bytes | None = None
        self.clipped = 0  # DP: how many of the last round's updates were clipped

    def _new_round(self) -> RoundMean:
        return self._private_mean(self.global_) if self._private_mean else WeightedMean(self.global_.numel())

    def broadcast(self) -> bytes:
        """The global model as sent to each sampled client (the same bytes all round)."""
        if self._message is None:
            self._message = to_bytes([self.global_])
        return self._message

    def receive(self, message: bytes, num_samples: int) -> None:
        """One client's update and how many examples it trained on (checked even where the mean ignores it)."""
        check_sample_count(num_samples)
        weights = self.codec.decode(from_bytes(message, self._kinds), self.global_)
        self._round.add(weights, num_samples)
        self._reports += 1

    def close_round(self) -> int:
        """Aggregate this round's updates; with none (every client dropped out) the global model stays as it was,
        except under differential privacy, whose noise is added every round.

        Returns how many clients reported.
        """
        reported = self._reports
        if reported or self._private_mean:
            self.global_ = self.step(self.global_, self._round.mean())
            self._message = None
        self.clipped = getattr(self._round, "clipped", 0)
        self._round, self._reports = self._new_round(), 0
        return reported
