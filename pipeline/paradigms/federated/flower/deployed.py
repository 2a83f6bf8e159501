"""The exported app's two sides as a SuperLink and its SuperNodes run them (``flower export``, ``flower run``).

A SuperNode's ClientApp is the simulation's (:func:`~.client_app.client_app`), reading its examples from the
file its node config names. The ServerApp runs the stage's rounds (:func:`~.server_app.serve`) with the
stage's server, round monitor and final metrics, from the exported start weights and held-out splits, and
writes what it ends with to the app's ``output`` folder: ``result.json`` (the final metrics and the history
per round, as the stage logs them to MLflow) and ``global.pt`` (the global model's state dict).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from flwr.app import Context
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from pipeline.data.prepared import TaskData, read_arrays
from pipeline.io import atomic_dir
from pipeline.models.classifier import build_classifier
from pipeline.paradigms.federated import PARADIGM
from pipeline.paradigms.federated.flower.client_app import client_app
from pipeline.paradigms.federated.flower.export import HELD_OUT, START
from pipeline.paradigms.federated.flower.recipe import ClientRecipe
from pipeline.paradigms.federated.flower.server_app import serve
from pipeline.paradigms.federated.parties import local_trainer, make_server, round_rng
from pipeline.paradigms.federated.run import RoundMonitor, final_metrics, privacy_accountant
from pipeline.seeding import seed_everything
from pipeline.threads import use_threads

RESULT, GLOBAL = "result.json", "global.pt"


def client_of(recipe_path: Path) -> ClientApp:
    recipe = ClientRecipe.read(recipe_path)
    return client_app(lambda _: recipe)


def server_of(recipe_path: Path) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        config = context.run_config
        federate_deployed(
            grid, ClientRecipe.read(recipe_path), Path(str(config["server-data"])), Path(str(config["output"]))
        )

    return app


def federate_deployed(grid: Grid, recipe: ClientRecipe, server_data: Path, output: Path) -> dict:
    """The stage's federated run over the SuperNodes of ``grid``; returns (and writes) the result."""
    params = recipe.params()
    cfg = params.federated
    use_threads(params.trainer_for(PARADIGM.stage).num_threads)
    seed_everything(params.seed)
    held = read_arrays(server_data / HELD_OUT)
    splits = ("val", "test")
    data = TaskData({s: held[f"X_{s}"] for s in splits}, {s: held[f"y_{s}"] for s in splits}, {}, held["classes"])
    model = build_classifier(params.model, recipe.input_shape, recipe.num_classes)
    model.load_state_dict(torch.load(server_data / START, weights_only=True))
    variant = f"{recipe.partition}/{recipe.strategy}"
    trainer, chosen = local_trainer(params, model, recipe.num_classes, recipe.strategy, recipe.num_clients)
    server = make_server(params, trainer, chosen, variant, recipe.num_clients)
    label = f"{PARADIGM.stage}/{variant} on Flower"
    monitor = RoundMonitor(
        trainer, server, data, label, cfg.rounds, lambda metrics, step: None, privacy_accountant(cfg)
    )
    records = serve(grid, server, recipe.num_clients, cfg, round_rng(params, variant), monitor, label)
    trainer.start_from(server.global_)
    metrics = final_metrics(trainer.predict(monitor.X["test"]), data, records, trainer.layout)
    result = {"variant": variant, "clients": recipe.num_clients, "metrics": metrics, "history": monitor.history}
    with atomic_dir(output) as out:
        (out / RESULT).write_text(json.dumps(result, indent=1, default=_number) + "\n")
        torch.save(model.state_dict(), out / GLOBAL)
    return result


def _number(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {value!r}")
