"""The ``federated`` params section: partitions, strategies and their settings, compression, privacy."""

from __future__ import annotations

import math
import typing
from typing import Literal

from pydantic import Field, field_validator

from pipeline.config.schema import Section, SharedParams, StageSection, once_each, refuse_trainer_keys

Partition = Literal["iid", "dirichlet", "shards"]
# one class each in pipeline.paradigms.federated.strategies (a test keeps the two in step)
FederatedStrategy = Literal["fedavg", "fedprox", "fedadam", "fedavgm", "scaffold"]
FEDERATED_STRATEGIES: tuple[str, ...] = typing.get_args(FederatedStrategy)
Compression = Literal["none", "fp16", "int8", "topk"]
Engine = Literal["inprocess", "flower"]


class FedProxSettings(Section):
    """FedProx (Li et al. 2020): each client adds (mu / 2) ||w - w_global||^2 to its loss."""

    mu: float = Field(1.0, ge=0)


class FedAdamSettings(Section):
    """FedAdam (Reddi et al. 2021): the server applies Adam to the mean client change."""

    lr: float = Field(0.01, gt=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.99, ge=0, lt=1)
    tau: float = Field(1e-3, gt=0)  # adaptivity: added to sqrt(v)


class FedAvgMSettings(Section):
    """FedAvgM (Hsu et al. 2019): server momentum over the mean client change."""

    lr: float = Field(1.0, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)


class ScaffoldSettings(Section):
    """SCAFFOLD (Karimireddy et al. 2020): control variates correct each client's drift from the global update."""

    lr: float = Field(1.0, gt=0)  # the server's step along the mean client change (1: take the mean)


class FlowerSettings(Section):
    """``engine: flower``: the clients as a Flower ClientApp, the server as a ServerApp (``flwr``'s simulation runtime
    in the stage; a SuperLink and SuperNodes once exported)."""

    round_timeout: float = Field(600.0, gt=0)  # seconds a round waits for its replies; a late client is a dropout
    client_cpus: float = Field(1.0, gt=0)  # simulation: CPU cores each simulated client reserves (Ray's resources)
    client_gpus: float = Field(0.0, ge=0)  # simulation: share of a GPU each simulated client reserves; 0: CPU only


class DifferentialPrivacySettings(Section):
    """DP-FedAvg (McMahan et al. 2018): clipped client changes, Gaussian noise, an (epsilon, delta) accountant."""

    enabled: bool = False
    clip_norm: float = Field(1.0, gt=0)  # largest L2 norm of one client's change
    noise_multiplier: float = Field(1.0, gt=0)  # noise std over clip_norm (clipping alone gives no guarantee)
    delta: float = Field(1e-5, gt=0, lt=1)  # epsilon is reported at this delta


class FederatedConfig(StageSection):
    """Simulated clients train locally; only model updates reach the server."""

    partitions: list[Partition] = Field(default_factory=lambda: ["iid", "dirichlet", "shards"], min_length=1)
    strategies: list[FederatedStrategy] = Field(
        default_factory=lambda: ["fedavg", "fedprox", "fedadam", "scaffold"], min_length=1
    )
    rounds: int = Field(30, ge=1)
    client_fraction: float = Field(0.5, gt=0, le=1)
    local_epochs: int = Field(1, ge=1)
    local_batch_size: int = Field(32, ge=1)
    client_dropout: float = Field(0.0, ge=0, le=1)  # probability that a sampled client never reports back
    engine: Engine = "inprocess"  # inprocess: every client in this process | flower: as a Flower app (simulated)
    batched: bool = True  # inprocess: a round's clients train as one computation (where every feature batches)
    clients_per_batch: int = Field(256, ge=1)  # batched: clients trained at once (each holds ~5 copies of the weights)
    flower: FlowerSettings = Field(default_factory=FlowerSettings)
    compression: Compression = "none"
    topk_fraction: float = Field(0.1, gt=0, le=1)  # topk: the share of update entries sent
    error_feedback: bool = True  # lossy compression: a client adds what its last update lost to its next one
    fedprox: FedProxSettings = Field(default_factory=FedProxSettings)
    fedadam: FedAdamSettings = Field(default_factory=FedAdamSettings)
    fedavgm: FedAvgMSettings = Field(default_factory=FedAvgMSettings)
    scaffold: ScaffoldSettings = Field(default_factory=ScaffoldSettings)
    dp: DifferentialPrivacySettings = Field(default_factory=DifferentialPrivacySettings)
    personalization_steps: int = Field(10, ge=0)  # local fine-tuning steps per client after training; 0 = none
    init_from_base: bool = False
    centralized: bool = True  # also train the centralised baseline on the pooled data

    @field_validator("engine", mode="before")
    @classmethod
    def _engine_moved(cls, value: object) -> object:
        if value in ("batched", "sequential"):
            raise ValueError(
                f"'{value}' is no longer an engine: allowed 'inprocess' or 'flower'; how in-process clients train is "
                f"federated.batched (set engine: inprocess, batched: {str(value == 'batched').lower()})"
            )
        return value

    @field_validator("partitions", "strategies")
    @classmethod
    def _once_each(cls, values: list[str]) -> list[str]:
        return once_each(values, "entry")

    _budget_from_rounds = refuse_trainer_keys(
        ("max_epochs", "batch_size"),
        "federated",
        "the clients train local_epochs per round at local_batch_size, and the centralised baseline gets the "
        "same budget; set federated.rounds, local_epochs or local_batch_size",
    )

    def epoch_budget(self) -> int:
        """Passes over the pooled data the federated clients make together: the centralised baseline's epochs."""
        return max(1, math.ceil(self.rounds * self.client_fraction * self.local_epochs))


def check_federated(params: SharedParams) -> None:
    if params.federated.engine == "flower":
        from pipeline.paradigms.federated.flower import require_flower

        require_flower()
    split = params.prepare.federated
    if params.model.batch_norm and split.min_samples_per_client < 2:
        raise ValueError(
            f"prepare.federated.min_samples_per_client = {split.min_samples_per_client}: with model.batch_norm true a "
            "client needs at least 2 examples (batch normalisation cannot train on one); allowed >= 2"
        )
    if params.federated.dp.enabled and "scaffold" in params.federated.strategies:
        raise ValueError(
            "federated.strategies includes 'scaffold' with federated.dp.enabled true: SCAFFOLD's control variates are "
            "client gradients the privacy accountant does not cover; remove 'scaffold' or disable dp"
        )
