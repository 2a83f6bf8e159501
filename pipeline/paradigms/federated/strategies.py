"""Federated strategies, each with a client half and a server half.

As a Flower strategy owns both what the clients are told and how their answers are combined, a
strategy here pairs the two halves and says what travels besides the weights. The halves are
separate objects, one on each side of the wire: the client half sees only a client's data and the
bytes the server sent; the server half sees only the bytes and sample counts the clients sent.

- :class:`~pipeline.paradigms.federated.client.ClientHalf`, a client's local objective: a term added to its
  loss, a correction of its gradients, state it keeps between rounds, and what it sends besides its update.
  Its base class lives beside the client that calls it (the client knows no strategy).
- :class:`ServerHalf`, the server's aggregation: what it sends besides the global weights, and how the
  clients' sample-weighted mean (FedAvg, McMahan et al. 2017) becomes the next global model.

FedAvg is both defaults. FedProx changes the client half, FedAdam and FedAvgM the server half,
SCAFFOLD both. Normalisation statistics are not parameters: they always take the mean.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Optional

import torch

from pipeline.paradigms.federated.client import ClientHalf
from pipeline.paradigms.federated.config import FederatedConfig
from pipeline.paradigms.federated.layout import StateLayout
from pipeline.paradigms.federated.wire import Part

if TYPE_CHECKING:
    from pipeline.paradigms.federated.client import Client, LocalTrainer


class ServerHalf:
    """FedAvg's server: the clients' weighted mean is the next global model."""

    def message(self) -> list[torch.Tensor]:
        """What the server sends after the global weights (see :meth:`Strategy.down_parts`)."""
        return []

    def receive(self, extras: list[torch.Tensor], count: int) -> None:
        """One client's parts after its update."""

    def step(self, global_: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """The next global vector from the current one and the clients' weighted mean."""
        return mean

    def close_round(self, reported: int) -> None:
        """The round's aggregation is done; ``reported`` clients answered."""


class Strategy:
    """FedAvg (McMahan et al. 2017), and what every strategy is made of."""

    name: ClassVar[str] = "fedavg"

    def __init__(self, cfg: FederatedConfig, layout: StateLayout, num_clients: int):
        self.cfg, self.layout, self.num_clients = cfg, layout, num_clients
        self.params = layout.param_mask()  # the vector's positions that hold parameters, not statistics

    def down_parts(self) -> list[Part]:
        """What a server message carries after the global weights."""
        return []

    def up_parts(self) -> list[Part]:
        """What a client message carries after the update."""
        return []

    def client_half(self) -> ClientHalf:
        return ClientHalf()

    def server_half(self) -> ServerHalf:
        return ServerHalf()


FedAvg = Strategy


class ProximalTerm(ClientHalf):
    """(mu / 2) ||w - w_start||^2 on every local step: the client stays near where it started."""

    def __init__(self, mu: float):
        self.mu = mu
        self.anchor: list[torch.Tensor] = []

    def on_train_start(self, trainer: LocalTrainer) -> None:
        self.anchor = [p.detach().clone() for p in trainer.params] if self.mu else []

    def penalty(self, params: list[torch.Tensor]) -> Optional[torch.Tensor]:
        if not self.anchor:
            return None
        return self.mu / 2 * sum(((p - a) ** 2).sum() for p, a in zip(params, self.anchor))


class FedProx(Strategy):
    """FedProx (Li et al. 2020): each client adds a proximal term to its loss; the server takes the mean."""

    name = "fedprox"

    def client_half(self) -> ClientHalf:
        return ProximalTerm(self.cfg.fedprox.mu)


class ServerOptimizer(ServerHalf):
    """``mean - global`` as a pseudo-gradient for a server optimizer, on parameters only (statistics take the mean)."""

    def __init__(self, params: torch.Tensor):
        self.params = params

    def step(self, global_: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        out = mean.clone()
        out[self.params] = global_[self.params] + self.update((mean - global_)[self.params])
        return out

    def update(self, change: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class ServerMomentum(ServerOptimizer):
    def __init__(self, params: torch.Tensor, lr: float, momentum: float):
        super().__init__(params)
        self.lr, self.momentum = lr, momentum
        self.velocity = torch.zeros(int(params.sum()))

    def update(self, change: torch.Tensor) -> torch.Tensor:
        self.velocity.mul_(self.momentum).add_(change)
        return self.lr * self.velocity


class ServerAdam(ServerOptimizer):
    def __init__(self, params: torch.Tensor, lr: float, beta1: float, beta2: float, tau: float):
        super().__init__(params)
        self.lr, self.beta1, self.beta2, self.tau = lr, beta1, beta2, tau
        n = int(params.sum())
        self.m, self.v = torch.zeros(n), torch.zeros(n)

    def update(self, change: torch.Tensor) -> torch.Tensor:
        self.m.mul_(self.beta1).add_(change, alpha=1 - self.beta1)
        self.v.mul_(self.beta2).addcmul_(change, change, value=1 - self.beta2)
        return self.lr * self.m / (self.v.sqrt() + self.tau)


class FedAvgM(Strategy):
    """FedAvgM (Hsu et al. 2019): server momentum over the mean client change."""

    name = "fedavgm"

    def server_half(self) -> ServerHalf:
        return ServerMomentum(self.params, self.cfg.fedavgm.lr, self.cfg.fedavgm.momentum)


class FedAdam(Strategy):
    """FedAdam (Reddi et al. 2021): the server applies Adam to the mean client change."""

    name = "fedadam"

    def server_half(self) -> ServerHalf:
        s = self.cfg.fedadam
        return ServerAdam(self.params, s.lr, s.beta1, s.beta2, s.tau)


class Scaffold(Strategy):
    """SCAFFOLD (Karimireddy et al. 2020): control variates correct each client's drift.

    The server keeps ``c``, an estimate of the global gradient; each client keeps ``c_i``, its own.
    A client trains with every gradient corrected by ``c - c_i``, so it follows the global objective
    rather than its own skewed one. Both variates cover parameters only and travel as float32, never
    compressed: the server sends ``c`` with the weights, a client answers with its change of ``c_i``.
    ``c_i`` is the client's gradient at the global model (the paper's option I): it assumes no
    optimizer, where option II's ``(x - y) / (steps x lr)`` holds for plain SGD only.
    """

    name = "scaffold"

    def down_parts(self) -> list[Part]:
        return [(torch.float32, int(self.params.sum()))]

    def up_parts(self) -> list[Part]:
        return [(torch.float32, int(self.params.sum()))]

    def client_half(self) -> ClientHalf:
        return ControlVariates(self.params)

    def server_half(self) -> ServerHalf:
        return GlobalVariate(self.params, self.cfg.scaffold.lr, self.num_clients)


class ControlVariates(ClientHalf):
    """The clients' side of SCAFFOLD: each client's ``c_i``, kept between its rounds, and the correction."""

    not_batched = "SCAFFOLD corrects each client's gradients with the client's own control variate"

    def __init__(self, params: torch.Tensor):
        self.params = params
        self.controls: dict[int, torch.Tensor] = {}  # client id -> c_i (parameter positions); absent: zero
        self.correction: list[tuple[torch.Tensor, torch.Tensor]] = []  # (parameter, its slice of c - c_i)
        self.change: Optional[torch.Tensor] = None

    def on_message(self, trainer: LocalTrainer, client: Client, extras: list[torch.Tensor]) -> None:
        (server_control,) = extras
        own = self.controls.get(client.id, torch.zeros_like(server_control))
        fresh = trainer.gradient_at_start(client)[self.params]
        self.correction = trainer.param_views(self._full(server_control - own))
        self.change, self.controls[client.id] = fresh - own, fresh

    def correct_gradients(self) -> None:
        for param, correction in self.correction:
            param.grad.add_(correction)

    def reply(self, trainer: LocalTrainer, client: Client) -> list[torch.Tensor]:
        change, self.change, self.correction = self.change, None, []  # personalisation afterwards trains uncorrected
        return [change]

    def client_state(self, client: Client) -> Optional[torch.Tensor]:
        return self.controls.get(client.id)

    def restore_client_state(self, client: Client, state: Optional[torch.Tensor]) -> None:
        if state is None:
            self.controls.pop(client.id, None)
        else:
            self.controls[client.id] = state

    def _full(self, values: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(self.params.numel())
        out[self.params] = values
        return out


class GlobalVariate(ServerOptimizer):
    """The server's side of SCAFFOLD: ``c``, moved by the reporting clients' changes over all ``N`` clients,
    and a step of ``lr`` along the mean client change."""

    def __init__(self, params: torch.Tensor, lr: float, num_clients: int):
        super().__init__(params)
        self.lr, self.num_clients = lr, num_clients
        self.control = torch.zeros(int(params.sum()))
        self.changes = torch.zeros_like(self.control, dtype=torch.float64)

    def message(self) -> list[torch.Tensor]:
        return [self.control]

    def receive(self, extras: list[torch.Tensor], count: int) -> None:
        self.changes += extras[0].double()

    def update(self, change: torch.Tensor) -> torch.Tensor:
        return self.lr * change

    def close_round(self, reported: int) -> None:
        self.control = self.control + (self.changes / self.num_clients).float()  # c += (1 / N) x the changes' sum
        self.changes.zero_()


STRATEGIES: dict[str, type[Strategy]] = {s.name: s for s in (FedAvg, FedProx, FedAdam, FedAvgM, Scaffold)}


def build_strategy(name: str, cfg: FederatedConfig, layout: StateLayout, num_clients: int) -> Strategy:
    return STRATEGIES[name](cfg, layout, num_clients)
