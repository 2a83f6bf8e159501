"""``federated.engine: flower``: a stage's federated run on Flower's simulation runtime.

The ServerApp runs :func:`~.server_app.serve` with the stage's own server and round monitor (Flower runs it
in a thread of this process, so the MLflow run and the terminal progress are the in-process engine's); one
virtual SuperNode per client runs :func:`~.client_app.client_app` in Flower's Ray workers, each rebuilding
its client from the recipe. Flower and Ray start once per run, which is this engine's start-up cost.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from typing import Callable, Iterator

import numpy as np

from pipeline.paradigms.federated.config import FederatedConfig
from pipeline.paradigms.federated.flower import require_flower
from pipeline.paradigms.federated.flower.recipe import ClientRecipe
from pipeline.paradigms.federated.server import Server
from pipeline.paradigms.federated.simulation import RoundRecord


def simulate_on_flower(
    server: Server,
    recipe: ClientRecipe,
    num_clients: int,
    cfg: FederatedConfig,
    rng: np.random.Generator,
    after_round: Callable[[RoundRecord], None],
    label: str,
) -> list[RoundRecord]:
    require_flower()
    from flwr.app import Context
    from flwr.serverapp import Grid, ServerApp
    from flwr.simulation import run_simulation

    from pipeline.paradigms.federated.flower.client_app import client_app
    from pipeline.paradigms.federated.flower.server_app import serve

    records: list[RoundRecord] = []
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        records.extend(serve(grid, server, num_clients, cfg, rng, after_round, label))

    workers = max(1, int((os.cpu_count() or 1) // cfg.flower.client_cpus))
    backend = {
        "client_resources": {"num_cpus": cfg.flower.client_cpus, "num_gpus": cfg.flower.client_gpus},
        "init_args": {
            "num_cpus": math.ceil(workers * cfg.flower.client_cpus),
            "log_to_driver": False,
            "logging_level": logging.ERROR,
        },
    }
    with _quiet():
        run_simulation(server_app, client_app(lambda _: recipe), num_clients, backend_config=backend)
    if len(records) != cfg.rounds:
        raise RuntimeError(f"[{label}] Flower's simulation ended after {len(records)} of {cfg.rounds} rounds")
    return records


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Flower's and Ray's own per-round logging off: the round monitor already prints one line per round. And
    this process's PYTHONPATH as it was: Flower's Ray backend sets it (for its workers) in our environment, where
    every later subprocess would inherit it."""
    pythonpath = os.environ.get("PYTHONPATH")
    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    flwr_logger.setLevel(logging.ERROR)  # also run_simulation's deprecation notice (docs/federated.md)
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    try:
        yield
    finally:
        flwr_logger.setLevel(level)
        if pythonpath is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = pythonpath
