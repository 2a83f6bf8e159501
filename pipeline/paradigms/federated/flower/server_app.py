"""The rounds as a Flower ``ServerApp`` runs them: the in-process engine's server, Flower's grid between.

:func:`serve` is the in-process engine's loop (:func:`~pipeline.paradigms.federated.simulation.run_rounds`)
with Flower carrying the messages: the same :class:`RoundPlan` draws the sampled clients, dropouts and seeds
from the run's generator, the same :class:`Server` aggregates (the strategy's server half, DP-FedAvg's
noise) and the same :class:`RoundTally` counts, so a seed gives the same clients on either engine. Replies
are aggregated in client order whatever order they arrive in. A client that fails (its ClientApp raised,
its reply was malformed or never came within ``flower.round_timeout``) is said in one line and counted as a
dropout: its download counts, its update does not, and the round goes on with the others.
"""

from __future__ import annotations

import sys
import time
from typing import Callable

import numpy as np
from flwr.app import Message, RecordDict
from flwr.serverapp import Grid

from pipeline.errors import OutsideFault
from pipeline.paradigms.federated.config import FederatedConfig
from pipeline.paradigms.federated.flower.messages import QUERY, TRAIN, TrainReply, TrainRequest, read_identity
from pipeline.paradigms.federated.server import Server
from pipeline.paradigms.federated.simulation import RoundPlan, RoundRecord, RoundTally

POLL_SECONDS = 0.2


def serve(
    grid: Grid,
    server: Server,
    num_clients: int,
    cfg: FederatedConfig,
    rng: np.random.Generator,
    after_round: Callable[[RoundRecord], None],
    label: str,
) -> list[RoundRecord]:
    """``cfg.rounds`` rounds over the nodes of ``grid``, one per client; ``after_round`` sees each record."""
    timeout = cfg.flower.round_timeout
    nodes = connect(grid, num_clients, timeout)
    records = []
    for r in range(1, cfg.rounds + 1):
        plan = RoundPlan.draw(cfg, num_clients, rng)
        message = server.broadcast()
        tally = RoundTally(r, plan, message)
        reporting = plan.reporting()
        requests = [
            Message(TrainRequest(message, seed, cfg.local_epochs).content(), dst_node_id=nodes[k], message_type=TRAIN)
            for k, seed in reporting
        ]
        client_of = {nodes[k]: k for k, _ in reporting}
        replies = {client_of[m.metadata.src_node_id]: m for m in grid.send_and_receive(requests, timeout=timeout)}
        for k, _ in reporting:  # client order, as the in-process engine aggregates
            problem = _take(server, tally, replies.get(k), timeout)
            if problem:
                print(f"[{label}] round {r}: client {k} {problem}; counted as a dropout", file=sys.stderr, flush=True)
        records.append(tally.close(server, cfg.local_epochs))
        after_round(records[-1])
    return records


def _take(server: Server, tally: RoundTally, reply: Message | None, timeout: float) -> str | None:
    """Aggregate one client's reply; what went wrong with it, or None."""
    if reply is None:
        return f"sent no reply within federated.flower.round_timeout ({timeout:g} s)"
    if reply.has_error():
        return f"failed: {reply.error.reason}"
    try:
        got = TrainReply.read(reply)
        tally.reply(server, got.update, got.examples, got.seconds, got.loss)
    except (KeyError, TypeError, ValueError) as err:  # refused before anything was aggregated
        return f"sent a malformed update ({err})"
    return None


def connect(grid: Grid, num_clients: int, timeout: float) -> dict[int, int]:
    """Client number -> node id, once a node per client has connected and said which client it is."""
    deadline = time.monotonic() + timeout
    while len(node_ids := sorted(grid.get_node_ids())) < num_clients:
        if time.monotonic() > deadline:
            raise OutsideFault(
                f"only {len(node_ids)} of {num_clients} SuperNodes connected within federated.flower.round_timeout "
                f"({timeout:g} s): start one per client, with --node-config 'partition-id=K data=...' for K in "
                f"0..{num_clients - 1}"
            )
        time.sleep(POLL_SECONDS)
    queries = [Message(RecordDict(), dst_node_id=node, message_type=QUERY) for node in node_ids]
    nodes: dict[int, int] = {}
    for reply in grid.send_and_receive(queries, timeout=timeout):
        node = reply.metadata.src_node_id
        if reply.has_error():
            raise OutsideFault(f"SuperNode {node} could not say which client it is: {reply.error.reason}")
        client = read_identity(reply)
        if client in nodes:
            raise OutsideFault(f"SuperNodes {nodes[client]} and {node} both say partition-id={client}: one per client")
        nodes[client] = node
    missing = sorted(set(range(num_clients)) - set(nodes))
    if missing:
        raise OutsideFault(f"no SuperNode answered for client(s) {missing}: start one per client, partition-id=K")
    return nodes
