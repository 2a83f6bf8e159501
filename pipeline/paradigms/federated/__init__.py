"""Federated learning: clients train on data that never leaves them; only model updates reach the server.

``run``: the stage (every partition x strategy, and the centralised baseline); ``strategies``: each
strategy's client half and server half (FedAvg, FedProx, FedAdam, FedAvgM, SCAFFOLD); ``client``,
``server``, ``wire`` and ``layout``: the two sides and the bytes between them; ``simulation``: the rounds;
``privacy``: DP-FedAvg; ``personalization``: local fine-tuning afterwards; ``config``: its params
section; ``compare``: the report's section against centralised training.
"""

from pipeline.paradigms.federated.config import FederatedConfig, check_federated
from pipeline.paradigms.plugin import Paradigm

# A sweep scores the global model after the last round: no best one is picked on validation.
PARADIGM = Paradigm.in_package(
    __name__,
    FederatedConfig,
    "full",
    compare="compare_with_centralized",
    sweep_metric="val/loss",
    checks=check_federated,
)
