"""The client side as a Flower ``ClientApp``: the in-process engine's local trainer, one client per node.

A training request is answered by :meth:`LocalTrainer.round`, the call the in-process engine makes for a
client trained on its own: reset to the global weights, the strategy's client half (FedProx's proximal
term, SCAFFOLD's correction), ``local_epochs`` on the node's examples, the update through the codec with
error feedback. What a client keeps between its rounds (the error-feedback residual, SCAFFOLD's control
variate) lives in the node's Flower state, since a worker process may serve another node next round. Each
worker builds its trainer and each client's tensors once and reuses them.
"""

from __future__ import annotations

from typing import Callable

import torch
from flwr.app import ConfigRecord, Context, Message
from flwr.clientapp import ClientApp

from pipeline.models.classifier import build_classifier
from pipeline.paradigms.federated.client import Client, LocalTrainer
from pipeline.paradigms.federated.flower.messages import TrainReply, TrainRequest, identity
from pipeline.paradigms.federated.flower.recipe import ClientRecipe, client_number
from pipeline.paradigms.federated.parties import STAGE, local_trainer
from pipeline.paradigms.federated.wire import from_bytes, to_bytes
from pipeline.threads import use_threads

_STATE = "paradigm-lab.client-state"
_trainers: dict[str, LocalTrainer] = {}  # per worker process: recipe key -> its trainer
_clients: dict[tuple[str, int], Client] = {}  # (recipe key, client number) -> its examples on the trainer's device


def client_app(recipe_for: Callable[[Context], ClientRecipe]) -> ClientApp:
    """A ClientApp whose node is the client numbered ``partition-id`` in its node config."""
    app = ClientApp()

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        recipe = recipe_for(context)
        return Message(identity(client_number(context.node_config, recipe.num_clients)), reply_to=msg)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        recipe = recipe_for(context)
        trainer = _trainer(recipe)
        client = _client(recipe, context, trainer)
        request = TrainRequest.read(msg)
        _restore(context, client, trainer)
        torch.manual_seed(request.seed)  # dropout's masks: the same whichever worker serves this node
        shuffle = torch.Generator().manual_seed(request.seed)
        reply, done = trainer.round(client, request.message, request.epochs, shuffle)
        _keep(context, client, trainer)
        return Message(TrainReply.of(reply, len(client), done).content(), reply_to=msg)

    return app


def _trainer(recipe: ClientRecipe) -> LocalTrainer:
    if recipe.key not in _trainers:
        params = recipe.params()
        use_threads(params.trainer_for(STAGE).num_threads)
        model = build_classifier(params.model, recipe.input_shape, recipe.num_classes)
        _trainers[recipe.key], _ = local_trainer(params, model, recipe.num_classes, recipe.strategy, recipe.num_clients)
    return _trainers[recipe.key]


def _client(recipe: ClientRecipe, context: Context, trainer: LocalTrainer) -> Client:
    number = client_number(context.node_config, recipe.num_clients)
    if (recipe.key, number) not in _clients:
        X, y = recipe.examples(number, context.node_config)
        device = trainer.device
        _clients[recipe.key, number] = Client(number, torch.from_numpy(X).to(device), torch.from_numpy(y).to(device))
    return _clients[recipe.key, number]


def _restore(context: Context, client: Client, trainer: LocalTrainer) -> None:
    """The client's residual and its strategy state from the node's state (none before its first round)."""
    record: ConfigRecord = context.state.config_records.get(_STATE, ConfigRecord())
    client.residual, state = None, None
    if "residual" in record:
        (residual,) = from_bytes(bytes(record["residual"]), [(torch.float32, trainer.layout.numel)])
        client.residual = residual.to(trainer.device)
    if "strategy" in record:
        blob = bytes(record["strategy"])
        (state,) = from_bytes(blob, [(torch.float32, len(blob) // 4)])
    trainer.objective.restore_client_state(client, state)


def _keep(context: Context, client: Client, trainer: LocalTrainer) -> None:
    fields = {}
    if client.residual is not None:
        fields["residual"] = to_bytes([client.residual])
    state = trainer.objective.client_state(client)
    if state is not None:
        fields["strategy"] = to_bytes([state.float()])
    if fields:
        context.state[_STATE] = ConfigRecord(fields)
