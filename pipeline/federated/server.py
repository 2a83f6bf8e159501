"""The server: holds the global model, sends it out, aggregates what comes back.

It never sees an example or a label: :meth:`Server.receive` takes a client's message (bytes
of the agreed layout, refused otherwise) and its sample count, nothing else.
"""

from __future__ import annotations

import torch

from pipeline.federated.aggregation import ServerStep, WeightedMean
from pipeline.federated.wire import Codec, from_bytes, to_bytes


class Server:
    def __init__(self, initial: torch.Tensor, codec: Codec, step: ServerStep):
        self.global_ = initial.detach().float().cpu().clone()
        self.codec = codec
        self.step = step
        self._kinds = codec.kinds()
        self._round = WeightedMean(self.global_.numel())
        self._reports = 0
        self._message: bytes | None = None

    def broadcast(self) -> bytes:
        """The global model as sent to each sampled client (the same bytes all round)."""
        if self._message is None:
            self._message = to_bytes([self.global_])
        return self._message

    def receive(self, message: bytes, num_samples: int) -> None:
        """One client's update and how many examples it trained on."""
        weights = self.codec.decode(from_bytes(message, self._kinds), self.global_)
        self._round.add(weights, num_samples)
        self._reports += 1

    def close_round(self) -> int:
        """Aggregate this round's updates; with none (every client dropped out) the global model stays as it was.

        Returns how many clients reported.
        """
        reported = self._reports
        if reported:
            self.global_ = self.step(self.global_, self._round.mean())
            self._message = None
        self._round, self._reports = WeightedMean(self.global_.numel()), 0
        return reported
