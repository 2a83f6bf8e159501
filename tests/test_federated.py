"""Federated learning on tiny models, real clients and a real MLflow store.

Mechanics, never which strategy wins: the server only ever receives parameters and sample
counts, aggregation is exact, bytes are counted as sent, dropouts are survived, and the stage
logs per-round metrics and the centralised baseline.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from pipeline.config.schema import ModelConfig, TrainerConfig
from pipeline.data.prepare import prepare_data
from pipeline.data.prepared import load_task, read_arrays
from pipeline.data.splits import client_class_counts, label_skew, partition_shards
from pipeline.models.checkpoint import load_classifier
from pipeline.models.classifier import build_classifier
from pipeline.models.reuse import starting_classifier
from pipeline.paradigms.federated.batched import BatchedClients, cannot_batch
from pipeline.paradigms.federated.client import Client, ClientHalf, LocalTrainer, make_clients
from pipeline.paradigms.federated.config import FEDERATED_STRATEGIES, FederatedConfig
from pipeline.paradigms.federated.layout import StateLayout
from pipeline.paradigms.federated.run import federate, federation, run_federated
from pipeline.paradigms.federated.server import Server, fedavg
from pipeline.paradigms.federated.simulation import run_rounds
from pipeline.paradigms.federated.strategies import (
    STRATEGIES,
    Scaffold,
    ServerAdam,
    ServerMomentum,
    build_strategy,
)
from pipeline.paradigms.federated.wire import Codec, from_bytes, message_bytes, to_bytes
from pipeline.seeding import rng_for, seed_everything
from pipeline.tracking.contract import CONTRACT_METRICS as CONTRACT
from tests.conftest import make_params, pretrained_workspace, stage_paths

MODEL = ModelConfig(hidden_sizes=[16])
TRAINER = TrainerConfig(accelerator="cpu")


def tiny_run(**federated):
    settings = {
        "partitions": ["iid"],
        "strategies": ["fedavg"],
        "rounds": 3,
        "client_fraction": 1.0,
        "personalization_steps": 2,
    } | federated
    return make_params(prepare={"federated": {"num_clients": 4}}, federated=settings)


def toy_setup(codec_name: str = "none", num_clients: int = 3, sizes=(5, 9, 14)):
    """A tiny model, its trainer and a server, and clients holding random data."""
    seed_everything(0)
    model = build_classifier(MODEL, (8,), 3)
    layout = StateLayout.of(model)
    codec = Codec(codec_name, layout, topk_fraction=0.05)
    trainer = LocalTrainer(model, 3, TRAINER, codec, batch_size=4)
    generator = torch.Generator().manual_seed(0)
    clients = [
        Client(k, torch.rand(n, 8, generator=generator), torch.randint(0, 3, (n,), generator=generator))
        for k, n in enumerate(sizes[:num_clients])
    ]
    return trainer, layout, codec, clients


class RecordingServer(Server):
    """A real server that also keeps every input its aggregation was given."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.inputs: list[tuple] = []

    def receive(self, message, num_samples):
        self.inputs.append((message, num_samples))
        super().receive(message, num_samples)


def simulate(trainer, layout, codec, clients, server_cls=Server, **cfg):
    server = server_cls(trainer.weights(), codec)
    settings = FederatedConfig(**({"rounds": 2, "client_fraction": 1.0} | cfg))
    records = run_rounds(server, trainer, clients, settings, rng_for(0, "test"), after_round=lambda record: None)
    return server, records


# --- the server sees parameters only -------------------------------------------------------------


def test_server_aggregation_inputs_are_parameters_and_counts_never_data():
    trainer, layout, codec, clients = toy_setup()
    server, records = simulate(trainer, layout, codec, clients, server_cls=RecordingServer)
    assert len(server.inputs) == 2 * len(clients)
    sizes = sorted(len(c) for c in clients)
    examples = [row.numpy().tobytes() for c in clients for row in c.X] + [c.y.numpy().tobytes() for c in clients]
    for message, count in server.inputs:
        assert type(message) is bytes and len(message) == 4 * layout.numel  # exactly one float32 per model entry
        assert type(count) is int and count in sizes
        assert not any(example in message for example in examples)
    # and the server refuses anything else: a client's examples as bytes or as a tensor
    with pytest.raises(ValueError, match="bytes"):
        server.receive(to_bytes([clients[0].X]), len(clients[0]))
    with pytest.raises(TypeError, match="bytes"):
        server.receive(clients[0].X, len(clients[0]))
    with pytest.raises(ValueError, match="sample count"):
        server.receive(server.broadcast(), 2.5)


# --- aggregation ---------------------------------------------------------------------------------


def test_fedavg_of_identical_client_models_returns_that_model_exactly():
    weights = torch.randn(1000) * torch.logspace(-6, 3, 1000)
    assert torch.equal(fedavg([weights.clone() for _ in range(3)], [3, 5, 7]), weights)
    trainer, layout, codec, clients = toy_setup()
    server = Server(torch.zeros(layout.numel), codec)
    client_model = torch.randn(layout.numel)
    for count in (3, 5, 7):
        server.receive(to_bytes(codec.encode(client_model, server.global_)), count)
    assert server.close_round() == 3
    assert torch.equal(server.global_, client_model)


def test_fedavg_weights_by_sample_count_exactly():
    a, b = torch.tensor([0.0, 0.0, 1.0]), torch.tensor([3.0, 6.0, 1.0])
    assert torch.equal(fedavg([a, b], [1, 2]), torch.tensor([2.0, 4.0, 1.0]))
    assert torch.equal(fedavg([a, b], [3, 1]), torch.tensor([0.75, 1.5, 1.0]))


def test_server_optimizers_step_parameters_and_average_statistics():
    """Catches: a strategy's server half ignoring its settings (e.g. FedAvgM built with momentum 0)."""
    params = torch.tensor([True, True, False])
    start, mean = torch.tensor([1.0, 1.0, 5.0]), torch.tensor([2.0, 0.0, 7.0])
    plain = ServerMomentum(params, lr=1.0, momentum=0.0).step(start, mean)
    assert torch.equal(plain, mean)  # no momentum, lr 1: FedAvg
    adam = ServerAdam(params, lr=0.1, beta1=0.9, beta2=0.99, tau=1e-3).step(start, mean)
    assert adam[2] == 7.0  # a running statistic takes the mean
    # lr x m / (sqrt(v) + tau) after one change of 1
    first_step = 0.1 * (1 - 0.9) * 1.0 / ((1 - 0.99) ** 0.5 * 1.0 + 1e-3)
    assert adam[0].item() == pytest.approx(1.0 + first_step) and adam[1].item() == pytest.approx(1.0 - first_step)
    # Every strategy's server half with the default settings, given the same global [1, 1, (5)] and client mean
    # [2, 0, (7)] twice: change c = [1, -1]; position 2 is a statistic and takes the mean. Round 1, round 2:
    # fedavg, fedprox (a client-side change), scaffold (lr 1, no variates sent): the mean, both rounds;
    # fedavgm (lr 1, momentum 0.9): velocity c, then 0.9 c + c = 1.9 c;
    # fedadam (lr 0.01, beta1 0.9, beta2 0.99, tau 0.001): m = 0.1 c, v = 0.01 c^2, step 0.01 x 0.1 / (0.1 + 0.001);
    # then m = 0.19 c, v = 0.0199 c^2, step 0.01 x 0.19 / (sqrt(0.0199) + 0.001).
    adam = (0.01 * 0.1 / (0.1 + 0.001), 0.01 * 0.19 / (0.0199**0.5 + 0.001))
    expected = {
        "fedavg": ([2.0, 0.0, 7.0], [2.0, 0.0, 7.0]),
        "fedprox": ([2.0, 0.0, 7.0], [2.0, 0.0, 7.0]),
        "scaffold": ([2.0, 0.0, 7.0], [2.0, 0.0, 7.0]),
        "fedavgm": ([2.0, 0.0, 7.0], [2.9, -0.9, 7.0]),
        "fedadam": tuple([1.0 + step, 1.0 - step, 7.0] for step in adam),
    }
    assert set(expected) == set(FEDERATED_STRATEGIES)
    for strategy, rounds in expected.items():
        half = build_strategy(strategy, FederatedConfig(), flat_layout(3, 2), 4).server_half()
        for round_, want in enumerate(rounds, start=1):
            got = half.step(start, mean)
            torch.testing.assert_close(got, torch.tensor(want), rtol=0, atol=1e-6, msg=f"{strategy}, round {round_}")


# --- communication --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["none", "fp16", "int8", "topk"])
def test_bytes_counted_equal_the_serialized_tensors(name):
    trainer, layout, codec, clients = toy_setup(name)
    n, tensors, k = layout.numel, len(layout.sizes), codec.topk
    expected = {"none": 4 * n, "fp16": 2 * n, "int8": n + 4 * tensors, "topk": 8 * k}[name]
    start, local = torch.randn(n), torch.randn(n)
    parts = codec.encode(local, start)
    assert (
        len(to_bytes(parts))
        == sum(p.numel() * p.element_size() for p in parts)
        == message_bytes(codec.kinds())
        == expected
    )
    server, records = simulate(trainer, layout, codec, clients, server_cls=RecordingServer)
    for record in records:
        assert record.bytes_down == record.clients_sampled * len(server.broadcast()) == record.clients_sampled * 4 * n
    assert (
        sum(r.bytes_up for r in records)
        == sum(len(message) for message, _ in server.inputs)
        == len(server.inputs) * expected
    )


def test_codecs_reconstruct_the_update():
    trainer, layout, _, _ = toy_setup()
    start = torch.randn(layout.numel)
    local = start + 0.01 * torch.randn(layout.numel)
    largest_change = float((local - start).abs().max())
    for name, tolerance in (("none", 0.0), ("fp16", largest_change * 2**-10), ("int8", largest_change / 127)):
        codec = Codec(name, layout)
        back = codec.decode(from_bytes(to_bytes(codec.encode(local, start)), codec.kinds()), start)
        assert (back - local).abs().max() <= tolerance, name
    topk = Codec("topk", layout, topk_fraction=0.1)
    back = topk.decode(from_bytes(to_bytes(topk.encode(local, start)), topk.kinds()), start)
    changed = (back != start).nonzero().flatten()
    largest = (local - start).abs().topk(topk.topk).indices
    assert sorted(changed.tolist()) == sorted(largest.tolist())
    assert torch.allclose(back[largest], local[largest])


def test_error_feedback_keeps_what_compression_dropped_on_the_client():
    trainer, layout, codec, clients = toy_setup("topk")
    client, start = clients[0], torch.zeros(layout.numel)
    first, second = torch.randn(layout.numel), torch.randn(layout.numel)
    sent = codec.decode(trainer.encode(client, first, start), start)
    assert torch.allclose(sent + client.residual, first)  # sent now + kept for later = the whole change
    sent_again = codec.decode(trainer.encode(client, second, start), start)
    assert torch.allclose(sent_again + client.residual, second + (first - sent))
    trainer.error_feedback = False
    plain = Client(1, client.X, client.y)
    trainer.encode(plain, first, start)
    assert plain.residual is None


# --- clients --------------------------------------------------------------------------------------


def test_a_client_batch_never_holds_a_lone_example():
    generator = torch.Generator().manual_seed(0)
    for n in range(2, 70):
        client = Client(0, torch.arange(n).float().unsqueeze(1), torch.zeros(n, dtype=torch.long))
        sizes, seen = [], []
        for X, _ in client.batches(32, generator):
            sizes.append(len(X))
            seen += X.flatten().int().tolist()
        assert min(sizes) >= 2 and sorted(seen) == list(range(n)), n


def test_fedprox_keeps_a_client_closer_to_the_global_model():
    """FedProx's promise: the proximal term pulls local training towards the weights it started from.

    Plain SGD (no optimizer state to normalise the pull away) on a model without batch norm or dropout, and
    the distance taken over trainable parameters only: the term alone scales it by ``1 - lr x mu`` a step
    (a half at mu = 10), so mu = 10 ends about ten times nearer than mu = 0 and mu = 1 a third nearer, far
    beyond any platform's rounding.
    """
    plain = ModelConfig(hidden_sizes=[16], batch_norm=False, dropout=0.0)
    sgd = TrainerConfig(accelerator="cpu", optimizer="sgd", lr=0.05, momentum=0.0)
    distances = {}
    for mu in (0.0, 1.0, 10.0):
        seed_everything(0)
        model = build_classifier(plain, (8,), 3)
        layout = StateLayout.of(model)
        objective = build_strategy("fedprox", FederatedConfig(fedprox={"mu": mu}), layout, 1).client_half()
        trainer = LocalTrainer(model, 3, sgd, Codec("none", layout), batch_size=4, objective=objective)
        generator = torch.Generator().manual_seed(0)
        client = Client(0, torch.rand(14, 8, generator=generator), torch.randint(0, 3, (14,), generator=generator))
        start = trainer.weights()
        trainer.start_from(start)
        trainer.train(client, torch.Generator().manual_seed(0), epochs=5)
        params = layout.param_mask()  # statistics (none here) are not what the proximal term pulls
        distances[mu] = float((trainer.weights() - start)[params].norm())
    # measured: 0.321 (mu = 0), 0.215 (mu = 1), 0.032 (mu = 10), the same with one thread or several
    assert distances[0.0] > 0.1, distances  # local training did move: the comparisons below are not of noise
    assert distances[10.0] < 0.25 * distances[0.0], distances
    assert distances[10.0] < 0.5 * distances[1.0] and distances[1.0] < 0.85 * distances[0.0], distances


def test_client_dropout_of_one_keeps_the_previous_global_model_and_logs_it(tracking_dir):
    params = tiny_run(client_dropout=1.0, rounds=2, centralized=False, personalization_steps=0)
    prepared = prepare_data(params)
    start = starting_classifier(params.model, prepared.full, tracking_dir / "none.pt", False, params.seed).state_dict()
    entry, history = federate(params, prepared.full, prepared.partitions["iid"], "iid", "fedavg", start, tracking_dir)
    model, _ = load_classifier(tracking_dir / "iid-fedavg.pt", params.model)
    assert all(torch.equal(model.state_dict()[k], start[k]) for k in start)
    assert entry["fl/rounds_without_reports"] == 2 and entry["comm/bytes_up_total"] == 0
    assert entry["comm/bytes_down_total"] > 0  # the model was still sent to the clients that then dropped out
    reported = MlflowClient().get_metric_history(entry["run_id"], "round/clients_reported")
    assert [(m.step, m.value) for m in reported] == [(1, 0.0), (2, 0.0)]
    assert [row["round"] for row in history] == [1, 2]


# --- strategies: a client half and a server half --------------------------------------------------


def strategy_setup(name: str, clients_data, model_cfg=MODEL, **settings):
    """A strategy's two halves around a tiny model: its local trainer, a server, and clients."""
    seed_everything(0)
    model = build_classifier(model_cfg, (8,), 3)
    layout = StateLayout.of(model)
    codec = Codec("none", layout)
    strategy = build_strategy(name, FederatedConfig(**settings), layout, len(clients_data))
    trainer = LocalTrainer(
        model,
        3,
        TRAINER,
        codec,
        batch_size=4,
        objective=strategy.client_half(),
        down_parts=tuple(strategy.down_parts()),
    )
    server = RecordingServer(trainer.weights(), codec, strategy.server_half(), tuple(strategy.up_parts()))
    clients = [Client(k, X, y) for k, (X, y) in enumerate(clients_data)]
    return trainer, server, clients, layout


def random_clients(sizes, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [(torch.rand(n, 8, generator=generator), torch.randint(0, 3, (n,), generator=generator)) for n in sizes]


def test_every_strategy_class_is_a_schema_choice_and_back():
    assert set(STRATEGIES) == set(FEDERATED_STRATEGIES)


def test_scaffold_sends_its_control_variates_both_ways_counted_in_the_bytes():
    trainer, server, clients, layout = strategy_setup("scaffold", random_clients((6, 9, 12)))
    records = run_rounds(
        server, trainer, clients, FederatedConfig(rounds=2, client_fraction=1.0), rng_for(0, "test"), lambda r: None
    )
    params = int(layout.param_mask().sum())
    assert params < layout.numel  # batch norm's statistics travel with the weights but have no control variate
    for record in records:
        assert record.bytes_down == record.clients_sampled * 4 * (layout.numel + params)
        assert record.bytes_up == record.clients_reported * 4 * (layout.numel + params)
    examples = [row.numpy().tobytes() for c in clients for row in c.X]
    assert all(not any(example in message for example in examples) for message, _ in server.inputs)


def test_scaffold_variates_are_the_clients_gradients_at_the_global_model_and_correct_their_drift():
    """After a round with every client: each c_i is its gradient at the round's global model, and the server's c
    their sum over all N clients. The next round corrects a client's every gradient by c - c_i."""
    data = random_clients((6, 9, 12))
    trainer, server, clients, layout = strategy_setup("scaffold", data, ModelConfig(hidden_sizes=[16], dropout=0.0))
    start = server.global_.clone()
    run_rounds(
        server, trainer, clients, FederatedConfig(rounds=1, client_fraction=1.0), rng_for(0, "test"), lambda r: None
    )
    mask = layout.param_mask()
    gradients = []
    for client in clients:  # each client's gradient at the start, by the same trainer from the same weights
        trainer.start_from(start)
        gradients.append(trainer.gradient_at_start(client)[mask])
    objective = trainer.objective
    for client, gradient in zip(clients, gradients):
        torch.testing.assert_close(objective.controls[client.id], gradient)
    torch.testing.assert_close(server.half.control, sum(gradients) / len(clients))
    assert float(server.half.control.norm()) > 0 and not torch.allclose(gradients[0], gradients[1])

    trainer.start_from(server.global_)
    objective.on_message(trainer, clients[0], [server.half.control])
    expected = trainer.param_views(objective._full(server.half.control - gradients[0]))
    assert [torch.equal(correction, want) for (_, correction), (_, want) in zip(objective.correction, expected)] == [
        True
    ] * len(expected)
    objective.reply(trainer, clients[0])
    assert objective.correction == []  # personalisation afterwards trains uncorrected


def test_scaffold_with_identical_clients_has_nothing_to_correct_and_trains_as_fedavg():
    same = random_clients((10,)) * 3
    runs = {}
    for name in ("fedavg", "scaffold"):
        trainer, server, clients, _ = strategy_setup(name, same, ModelConfig(hidden_sizes=[16], dropout=0.0))
        run_rounds(
            server, trainer, clients, FederatedConfig(rounds=3, client_fraction=1.0), rng_for(0, "test"), lambda r: None
        )
        runs[name] = server.global_
    torch.testing.assert_close(runs["scaffold"], runs["fedavg"], rtol=0, atol=1e-5)


# --- partitions -----------------------------------------------------------------------------------


def test_shards_give_each_client_few_classes():
    y = np.repeat(np.arange(10), 50)
    clients = partition_shards(y, 10, 2, rng_for(0, "test"))
    counts = client_class_counts(clients, y, 10)
    assert counts.sum() == len(y) and set(np.bincount(clients)) == {50}
    assert ((counts > 0).sum(axis=1) <= 2).all()
    assert label_skew(clients, y) > 0.7


# --- the stage ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    params = tiny_run()
    with pretrained_workspace(tmp_path_factory.mktemp("federated"), params) as root:
        yield root


def test_stage_logs_every_round_the_contract_and_the_centralised_baseline(prepared):
    params = tiny_run(
        partitions=["iid", "shards"], strategies=["fedavg", "fedprox", "fedadam", "fedavgm"], init_from_base=True
    )
    runs = run_federated(params, stage_paths("federated", prepared, "out"))
    assert list(runs) == ["centralized"] + [
        f"{p}/{s}" for p in ("iid", "shards") for s in ("fedavg", "fedprox", "fedadam", "fedavgm")
    ]
    client = MlflowClient()
    central = client.get_run(runs["centralized"]["run_id"])
    assert central.data.tags["paradigm"] == "centralized"
    assert central.data.params["trainer.max_epochs"] == str(params.federated.epoch_budget()) == "3"
    assert central.data.params["trainer.batch_size"] == str(params.federated.local_batch_size)
    for variant, entry in runs.items():
        if variant == "centralized":
            continue
        run = client.get_run(entry["run_id"])
        assert (run.data.tags["paradigm"], run.data.tags["variant"], run.data.tags["init"]) == (
            "federated",
            variant,
            "pretrained base",
        )
        assert set(CONTRACT) <= set(run.data.metrics), set(CONTRACT) - set(run.data.metrics)
        assert (run.data.tags["engine"], run.data.tags["client_training"]) == ("inprocess", "batched")
        for key in ("test/acc", "test/loss", "round/clients_reported", "round/bytes_up", "round/bytes_down"):
            assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2, 3], key
        assert entry["comm/bytes_total"] == entry["comm/bytes_down_total"] + entry["comm/bytes_up_total"] > 0
        assert entry["fl/clients"] == 4 and entry["compare/acc_gap_vs_centralized"] == pytest.approx(
            entry["test/acc"] - runs["centralized"]["test/acc"]
        )
        assert 0 <= entry["personal/acc_before_mean"] <= 1 and 0 <= entry["personal/acc_after_mean"] <= 1
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert {"plots/rounds.png", "plots/personalization.png", "plots/confusion_matrix.png"} <= artifacts
        model, _ = load_classifier(prepared / "out/models" / f"{variant.replace('/', '-')}.pt", params.model)
        assert model.head.out_features == 10
    for name in ("rounds.csv", "runs.csv", "personalization.csv"):
        assert (prepared / "out/plots" / name).is_file()


def test_the_same_seed_gives_the_same_federated_run(prepared):
    params = tiny_run(
        strategies=["fedadam"], compression="int8", client_fraction=0.5, client_dropout=0.3, centralized=False
    )
    paths = stage_paths("federated", prepared)
    data = load_task(paths.prepared("full"))
    assignment = read_arrays(paths.prepared("federated"))["iid"]
    start = starting_classifier(params.model, data, prepared / "none.pt", False, params.seed).state_dict()
    first, _ = federate(params, data, assignment, "iid", "fedadam", start, prepared / "a")
    second, _ = federate(params, data, assignment, "iid", "fedadam", start, prepared / "b")
    same = ("test/acc", "test/loss", "comm/bytes_total", "personal/acc_after_mean", "fl/rounds_without_reports")
    assert {k: first[k] for k in same} == {k: second[k] for k in same}
    assert (prepared / "a/iid-fedadam.pt").read_bytes() == (prepared / "b/iid-fedadam.pt").read_bytes()


@pytest.mark.gpu
def test_clients_train_on_the_gpu_when_there_is_one(tracking_dir):
    params = tiny_run(centralized=False, personalization_steps=0)
    prepared_data = prepare_data(params)
    start = starting_classifier(
        params.model, prepared_data.full, tracking_dir / "none.pt", False, params.seed
    ).state_dict()
    entry, _ = federate(
        params, prepared_data.full, prepared_data.partitions["iid"], "iid", "fedavg", start, tracking_dir
    )
    run = MlflowClient().get_run(entry["run_id"])
    assert run.data.tags["device"].startswith("cuda") and entry["memory/peak_bytes"] > 0
    assert make_clients(np.zeros((2, 1), np.float32), np.zeros(2, np.int64), np.array([0, 1]), torch.device("cuda"))[
        0
    ].X.is_cuda


def test_federated_params_errors_name_the_key_and_what_is_allowed():
    from tests.test_config import error_for

    assert (
        "federated.strategies[1] = 'fedsgd': must be 'fedavg', 'fedprox', 'fedadam', 'fedavgm' or 'scaffold'"
        in error_for({"federated": {"strategies": ["fedavg", "fedsgd"]}})
    )
    assert "'scaffold' with federated.dp.enabled true" in error_for(
        {"federated": {"strategies": ["scaffold"], "dp": {"enabled": True}}}
    )
    assert "federated.client_fraction = 1.5: must be less than or equal to 1" in error_for(
        {"federated": {"client_fraction": 1.5}}
    )
    assert "federated.engine = 'parallel': must be 'inprocess' or 'flower'" in error_for(
        {"federated": {"engine": "parallel"}}
    )
    # the engine's former values say where the choice moved
    assert "set engine: inprocess, batched: false" in error_for({"federated": {"engine": "sequential"}})
    assert "federated.clients_per_batch = 0: must be greater than or equal to 1" in error_for(
        {"federated": {"clients_per_batch": 0}}
    )
    assert "federated.trainer: max_epochs = 3 is not a federated trainer option" in error_for(
        {"federated": {"trainer": {"max_epochs": 3}}}
    )
    message = error_for({"prepare": {"federated": {"min_samples_per_client": 1}}})
    assert "prepare.federated.min_samples_per_client = 1" in message and "batch_norm" in message


def test_partitions_prepare_did_not_write_are_refused_naming_the_file(tmp_path):
    from pipeline.errors import DataError
    from pipeline.io import write_npz
    from pipeline.paradigms.federated.run import load_partitions

    write_npz(tmp_path / "federated.npz", iid=np.zeros(10, dtype=np.int64))
    with pytest.raises(
        DataError, match=r"federated.npz: no 'shards' partition \(it has iid\); re-run `dvc repro prepare`"
    ):
        load_partitions(tmp_path / "federated.npz", ["iid", "shards"], 10)
    with pytest.raises(DataError, match="covers 10 examples, full.npz trains on 12"):
        load_partitions(tmp_path / "federated.npz", ["iid"], 12)
    with pytest.raises(
        DataError, match="cannot be cut into 10 clients x 2 shards; lower prepare.federated.num_clients"
    ):
        partition_shards(np.zeros(15, dtype=np.int64), 10, 2, rng_for(0, "test"))


# --- differential privacy -------------------------------------------------------------------------


def test_private_mean_clips_each_change_weighs_clients_equally_and_adds_noise():
    from pipeline.paradigms.federated.privacy import PrivateMean

    start = torch.zeros(4)
    exact = PrivateMean(
        start, clip_norm=1.0, noise_multiplier=0.0, expected_clients=2, generator=torch.Generator().manual_seed(0)
    )
    # norm 5: clipped to norm 1, and 100 examples weigh no more than 1
    exact.add(torch.tensor([3.0, 4.0, 0.0, 0.0]), 100)
    exact.add(torch.tensor([0.1, 0.0, 0.0, 0.0]), 1)
    assert exact.clipped == 1
    private_server = Server(
        torch.zeros(4),
        Codec("none", StateLayout(("w",), (torch.Size([4]),), (True,))),
        private_mean=lambda start: PrivateMean(start, 1.0, 1.0, 2, torch.Generator().manual_seed(0)),
    )
    with pytest.raises(ValueError, match="sample count"):
        private_server.receive(private_server.broadcast(), 2.5)
    assert torch.allclose(exact.mean(), torch.tensor([0.35, 0.4, 0.0, 0.0]))
    noisy = PrivateMean(
        torch.zeros(100_000),
        clip_norm=2.0,
        noise_multiplier=0.5,
        expected_clients=4,
        generator=torch.Generator().manual_seed(0),
    )
    # noise std sigma x clip over the expected clients
    assert float(noisy.mean().std()) == pytest.approx(0.5 * 2.0 / 4, rel=0.02)


def test_dp_samples_clients_independently_at_the_client_fraction():
    from pipeline.paradigms.federated.simulation import sample_clients

    private = FederatedConfig(client_fraction=0.3, dp={"enabled": True})
    counts = [len(sample_clients(private, 50, rng_for(0, str(i)))) for i in range(400)]
    assert len(set(counts)) > 5 and np.mean(counts) == pytest.approx(15, rel=0.05)
    assert {len(sample_clients(FederatedConfig(client_fraction=0.3), 50, rng_for(0, str(i)))) for i in range(20)} == {
        15
    }


def test_dp_accounts_epsilon_every_round_and_adds_noise_even_when_nobody_reports(tracking_dir):
    epsilons = {}
    for noise in (0.5, 2.0):
        params = tiny_run(
            client_dropout=1.0,
            rounds=3,
            centralized=False,
            personalization_steps=0,
            dp={"enabled": True, "noise_multiplier": noise, "clip_norm": 0.5},
        )
        prepared = prepare_data(params)
        start = starting_classifier(
            params.model, prepared.full, tracking_dir / "none.pt", False, params.seed
        ).state_dict()
        entry, _ = federate(params, prepared.full, prepared.partitions["iid"], "iid", "fedavg", start, tracking_dir)
        model, _ = load_classifier(tracking_dir / "iid-fedavg.pt", params.model)
        assert not all(torch.equal(model.state_dict()[k], start[k]) for k in start)  # the noise is released every round
        history = [m.value for m in MlflowClient().get_metric_history(entry["run_id"], "privacy/epsilon")]
        assert len(history) == 3 and 0 < history[0] < history[1] < history[2] == entry["privacy/epsilon"]
        epsilons[noise] = entry["privacy/epsilon"]
        assert MlflowClient().get_run(entry["run_id"]).data.tags["dp"] == "true"
    assert epsilons[2.0] < epsilons[0.5]


# --- batched clients ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model_cfg, optimizer, strategy",
    [
        (ModelConfig(hidden_sizes=[16], batch_norm=True, dropout=0.0), "sgd", "fedprox"),
        (ModelConfig(hidden_sizes=[16], batch_norm=False, dropout=0.0), "adam", "fedavg"),
    ],
)
def test_batched_clients_train_as_the_sequential_engine_up_to_float_order(model_cfg, optimizer, strategy):
    # batch 4, 2 local epochs: 2 to 8 steps per client, so clients finish at different steps, and the steps
    # mix batch sizes (a lone last example joins the batch before: 5 -> [4+1]) that compute in separate groups
    sizes = (5, 9, 14, 2, 13, 7)
    cfg = FederatedConfig(rounds=2, client_fraction=1.0, local_epochs=2, strategies=[strategy])
    trainer_cfg = TrainerConfig(accelerator="cpu", optimizer=optimizer)
    runs = []
    for batched in (False, True):
        seed_everything(0)
        model = build_classifier(model_cfg, (8,), 3)
        layout = StateLayout.of(model)
        codec = Codec("none", layout)
        half = build_strategy(strategy, cfg, layout, len(sizes)).client_half()
        trainer = LocalTrainer(model, 3, trainer_cfg, codec, batch_size=4, objective=half)
        engine = BatchedClients(trainer, clients_per_batch=4) if batched else trainer  # two groups: 4, then 2
        clients = [Client(k, X, y) for k, (X, y) in enumerate(random_clients(sizes))]
        start = trainer.weights()
        server = Server(start, codec)
        records = run_rounds(server, engine, clients, cfg, rng_for(0, "test"), after_round=lambda record: None)
        runs.append((server.global_, [r.train_loss for r in records], trainer.state_bytes))
    (sequential, seq_losses, seq_bytes), (batched, batched_losses, batched_bytes) = runs
    assert (sequential - start).abs().max() > 1e-3  # the clients trained: far beyond the tolerance below
    torch.testing.assert_close(batched, sequential, rtol=1e-5, atol=1e-5)
    assert batched_losses == pytest.approx(seq_losses, rel=1e-5)
    assert batched_bytes == pytest.approx(seq_bytes, rel=0.01)  # one client's share of the stacked state


def test_what_cannot_batch_trains_one_client_after_another_and_says_why(prepared):
    layout = StateLayout.of(build_classifier(MODEL, (8,), 3))
    assert "control variate" in cannot_batch(Scaffold(FederatedConfig(), layout, 3).client_half(), "32")
    assert "gradient scaler" in cannot_batch(ClientHalf(), "16-mixed")
    assert cannot_batch(ClientHalf(), "bf16-mixed") is None
    params = tiny_run()
    paths = stage_paths("federated", prepared)
    data = load_task(paths.prepared("full"))
    assignment = read_arrays(paths.prepared("federated"))["iid"]
    start = starting_classifier(params.model, data, prepared / "none.pt", False, params.seed).state_dict()
    scaffold = federation(params, data, assignment, "scaffold", start, "iid/scaffold")
    assert (scaffold.client_training, scaffold.batched) == ("sequential", None)
    assert "SCAFFOLD" in scaffold.not_batched
    fedprox = federation(params, data, assignment, "fedprox", start, "iid/fedprox")
    assert (fedprox.client_training, fedprox.not_batched) == ("batched", None)
    asked = params.model_copy(update={"federated": params.federated.model_copy(update={"batched": False})})
    assert federation(asked, data, assignment, "fedprox", start, "iid/fedprox").client_training == "sequential"


# --- the server and the strategies' halves, number by number ---------------------------------------


def flat_layout(n: int, params: int | None = None) -> StateLayout:
    """One parameter tensor of ``params`` entries (all ``n`` by default), then a statistic of the rest."""
    params = n if params is None else params
    if params == n:
        return StateLayout(("w",), (torch.Size([n]),), (True,))
    return StateLayout(("w", "running_mean"), (torch.Size([params]), torch.Size([n - params])), (True, False))


def test_a_sample_count_must_be_a_positive_int():
    from pipeline.paradigms.federated.server import check_sample_count

    for count in (1, 2, 1000):
        check_sample_count(count)
    for count in (0, -1, 2.5, 1.0, "3", None):
        with pytest.raises(ValueError, match="a client's sample count is a positive int"):
            check_sample_count(count)


def test_fedavg_weights_each_client_by_its_sample_count():
    vectors = [torch.tensor([1.0, 2.0]), torch.tensor([3.0, -2.0]), torch.tensor([0.0, 8.0])]
    # (1 x [1, 2] + 2 x [3, -2] + 5 x [0, 8]) / 8 = [7, 38] / 8
    assert torch.equal(fedavg(vectors, [1, 2, 5]), torch.tensor([0.875, 4.75]))
    assert torch.equal(fedavg(vectors[:1], [3]), vectors[0])  # one client: its own vector
    with pytest.raises(ValueError, match="sample count"):
        fedavg(vectors, [1, 0, 5])


def test_weighted_mean_sums_in_float64_and_counts_every_sample():
    """2^24 + 1 + 1 is exact in float64 but rounds to 2^24 in float32: the mean of the three is 5592406 only when the
    sum is kept in float64."""
    from pipeline.paradigms.federated.server import WeightedMean

    mean = WeightedMean(1)
    assert mean.total.dtype == torch.float64 and mean.count == 0
    for value in (2.0**24, 1.0, 1.0):
        mean.add(torch.tensor([value]), 1)
    assert mean.count == 3 and mean.total.item() == 2.0**24 + 2
    assert mean.mean().dtype == torch.float32 and mean.mean().item() == 5592406.0
    weighted = WeightedMean(2)
    weighted.add(torch.tensor([4.0, 0.0]), 3)
    weighted.add(torch.tensor([0.0, 2.0]), 1)
    assert weighted.count == 4 and torch.equal(weighted.mean(), torch.tensor([3.0, 0.5]))


class RecordingHalf:
    """A strategy's server half that sends two extra numbers and records every call the server makes."""

    def __init__(self):
        self.received: list[tuple[list[list[float]], int]] = []
        self.steps: list[tuple[list[float], list[float]]] = []
        self.closed: list[int] = []

    def message(self) -> list[torch.Tensor]:
        return [torch.tensor([9.0, 8.0])]

    def receive(self, extras, count):
        self.received.append(([e.tolist() for e in extras], count))

    def step(self, global_, mean):
        self.steps.append((global_.tolist(), mean.tolist()))
        return mean + 100

    def close_round(self, reported):
        self.closed.append(reported)


def test_server_broadcasts_aggregates_through_its_half_and_keeps_the_model_through_an_empty_round():
    codec = Codec("none", flat_layout(3))
    half = RecordingHalf()
    initial = torch.tensor([1.0, 2.0, 3.0])
    server = Server(initial, codec, half, up_parts=((torch.float32, 2),))
    initial.add_(1)  # the server holds its own copy
    assert server.clipped == 0
    message = server.broadcast()
    assert message == to_bytes([torch.tensor([1.0, 2.0, 3.0]), torch.tensor([9.0, 8.0])])
    assert server.broadcast() is message  # the same bytes all round

    server.receive(to_bytes([torch.tensor([4.0, 4.0, 4.0]), torch.tensor([1.0, 1.0])]), 1)
    server.receive(to_bytes([torch.tensor([1.0, 1.0, 1.0]), torch.tensor([2.0, -2.0])]), 2)
    assert server.close_round() == 2
    assert half.received == [([[1.0, 1.0]], 1), ([[2.0, -2.0]], 2)]  # the parts after the update, and the counts
    assert half.steps == [([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])]  # (the global model, the weighted mean)
    assert half.closed == [2] and server.clipped == 0
    assert torch.equal(server.global_, torch.tensor([102.0, 102.0, 102.0]))
    assert server.broadcast() == to_bytes([torch.tensor([102.0, 102.0, 102.0]), torch.tensor([9.0, 8.0])])

    assert server.close_round() == 0  # every client dropped out: no step, the model stays
    assert half.steps == [([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])] and half.closed == [2, 0]
    assert torch.equal(server.global_, torch.tensor([102.0, 102.0, 102.0]))

    server.receive(to_bytes([torch.tensor([6.0, 0.0, 3.0]), torch.tensor([0.0, 0.0])]), 5)
    assert server.close_round() == 1  # a fresh round: only its own client counts
    assert half.steps[-1] == ([102.0, 102.0, 102.0], [6.0, 0.0, 3.0]) and half.closed == [2, 0, 1]


def test_server_decodes_a_compressed_update_against_the_global_model():
    codec = Codec("fp16", flat_layout(2))
    start = torch.tensor([1.0, 2.0])
    server = Server(start, codec)
    assert server.broadcast() == to_bytes([start])  # FedAvg's half sends nothing besides the weights
    server.receive(to_bytes(codec.encode(torch.tensor([1.5, 3.0]), start)), 1)
    server.receive(to_bytes(codec.encode(torch.tensor([0.0, 2.0]), start)), 3)
    assert server.close_round() == 2
    assert torch.equal(server.global_, torch.tensor([0.375, 2.25]))  # (1 x [1.5, 3] + 3 x [0, 2]) / 4


def test_private_server_counts_clipped_updates_and_adds_noise_even_in_an_empty_round():
    from pipeline.paradigms.federated.privacy import PrivateMean

    codec = Codec("none", flat_layout(2))
    exact = Server(torch.zeros(2), codec, private_mean=lambda start: PrivateMean(start, 1.0, 0.0, 2, None))
    exact.receive(to_bytes([torch.tensor([3.0, 4.0])]), 100)  # norm 5: clipped to norm 1
    assert exact.close_round() == 1 and exact.clipped == 1
    torch.testing.assert_close(exact.global_, torch.tensor([0.3, 0.4]))  # [0.6, 0.8] over 2 expected clients
    assert exact.close_round() == 0 and exact.clipped == 0

    def noisy(start):
        return PrivateMean(start, 1.0, 1.0, 2, torch.Generator().manual_seed(0))

    server = Server(torch.zeros(2), codec, private_mean=noisy)
    assert server.close_round() == 0
    noise = torch.randn(2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1.0 / 2
    assert torch.equal(server.global_, noise.float()) and bool((server.global_ != 0).all())


def test_every_strategy_class_under_its_name():
    from pipeline.paradigms.federated.strategies import FedAdam, FedAvg, FedAvgM, FedProx

    assert STRATEGIES == {
        "fedavg": FedAvg,
        "fedprox": FedProx,
        "fedadam": FedAdam,
        "fedavgm": FedAvgM,
        "scaffold": Scaffold,
    }


def test_build_strategy_hands_the_settings_layout_and_client_count_on():
    cfg, layout = FederatedConfig(), flat_layout(3, 2)
    strategy = build_strategy("scaffold", cfg, layout, 5)
    assert type(strategy) is Scaffold
    assert (strategy.cfg, strategy.layout, strategy.num_clients) == (cfg, layout, 5)
    assert strategy.params.tolist() == [True, True, False]


def test_fedavg_sends_nothing_besides_the_weights_and_its_server_takes_the_mean():
    from pipeline.paradigms.federated.strategies import ServerHalf

    strategy = build_strategy("fedavg", FederatedConfig(), flat_layout(3), 2)
    assert strategy.down_parts() == [] and strategy.up_parts() == []
    assert type(strategy.client_half()) is ClientHalf and type(strategy.server_half()) is ServerHalf
    half, mean = ServerHalf(), torch.tensor([1.0, 2.0])
    assert half.message() == [] and half.step(torch.zeros(2), mean) is mean


def test_fedprox_penalty_is_half_mu_times_the_squared_distance_from_the_start():
    """mu = 0.5; the start [1, 1], [2] moved to [2, -1], [5]: differences [1, -2], [3], squared sum 14, penalty
    0.25 x 14 = 3.5, its gradient mu x the differences."""
    from types import SimpleNamespace

    from pipeline.paradigms.federated.strategies import ProximalTerm

    half = build_strategy("fedprox", FederatedConfig(fedprox={"mu": 0.5}), flat_layout(3), 2).client_half()
    assert type(half) is ProximalTerm and half.mu == 0.5
    assert half.penalty([torch.ones(2)]) is None  # before local training starts: no anchor
    params = [torch.tensor([1.0, 1.0], requires_grad=True), torch.tensor([2.0], requires_grad=True)]
    half.on_train_start(SimpleNamespace(params=params))
    with torch.no_grad():  # local training moves the parameters in place; the anchor stays
        params[0].copy_(torch.tensor([2.0, -1.0]))
        params[1].copy_(torch.tensor([5.0]))
    penalty = half.penalty(params)
    assert penalty.item() == 3.5
    penalty.backward()
    assert params[0].grad.tolist() == [0.5, -1.0] and params[1].grad.tolist() == [1.5]

    off = ProximalTerm(0.0)
    off.on_train_start(SimpleNamespace(params=params))
    assert off.anchor == [] and off.penalty(params) is None  # mu = 0: FedAvg's client


def test_server_momentum_accumulates_the_mean_change_on_parameters_and_statistics_take_the_mean():
    """lr 0.5, momentum 0.9. Round 1: change [1, -1], velocity [1, -1], step [0.5, -0.5].
    Round 2: change [1, 0], velocity 0.9 x [1, -1] + [1, 0] = [1.9, -0.9], step [0.95, -0.45]."""
    half = build_strategy(
        "fedavgm", FederatedConfig(fedavgm={"lr": 0.5, "momentum": 0.9}), flat_layout(3, 2), 2
    ).server_half()
    assert type(half) is ServerMomentum and (half.lr, half.momentum) == (0.5, 0.9)
    first = half.step(torch.tensor([1.0, 1.0, 5.0]), torch.tensor([2.0, 0.0, 7.0]))
    torch.testing.assert_close(first, torch.tensor([1.5, 0.5, 7.0]), rtol=0, atol=1e-6)
    second = half.step(first, torch.tensor([2.5, 0.5, 3.0]))
    torch.testing.assert_close(second, torch.tensor([1.5 + 0.95, 0.5 - 0.45, 3.0]), rtol=0, atol=1e-6)
    torch.testing.assert_close(half.velocity, torch.tensor([1.9, -0.9]), rtol=0, atol=1e-6)


def test_server_adam_steps_by_its_moments_over_the_root_of_the_second_plus_tau():
    """lr 0.1, beta1 0.6, beta2 0.75, tau 0.5. Round 1: change [1, -1]: m = 0.4 x change = [0.4, -0.4],
    v = 0.25 x change^2 = [0.25, 0.25], step 0.1 x m / (0.5 + 0.5) = [0.04, -0.04].
    Round 2: change [2, 0]: m = 0.6 x [0.4, -0.4] + 0.4 x [2, 0] = [1.04, -0.24],
    v = 0.75 x [0.25, 0.25] + 0.25 x [4, 0] = [1.1875, 0.1875]."""
    cfg = FederatedConfig(fedadam={"lr": 0.1, "beta1": 0.6, "beta2": 0.75, "tau": 0.5})
    half = build_strategy("fedadam", cfg, flat_layout(3, 2), 2).server_half()
    assert type(half) is ServerAdam and (half.lr, half.beta1, half.beta2, half.tau) == (0.1, 0.6, 0.75, 0.5)
    first = half.step(torch.tensor([1.0, 1.0, 5.0]), torch.tensor([2.0, 0.0, 7.0]))
    torch.testing.assert_close(first, torch.tensor([1.04, 0.96, 7.0]), rtol=0, atol=1e-6)
    second = half.step(first, torch.tensor([3.04, 0.96, 0.0]))
    expected = [1.04 + 0.1 * 1.04 / (1.1875**0.5 + 0.5), 0.96 - 0.1 * 0.24 / (0.1875**0.5 + 0.5), 0.0]
    torch.testing.assert_close(second, torch.tensor(expected), rtol=0, atol=1e-6)
    torch.testing.assert_close(half.m, torch.tensor([1.04, -0.24]), rtol=0, atol=1e-6)
    torch.testing.assert_close(half.v, torch.tensor([1.1875, 0.1875]), rtol=0, atol=1e-6)


def test_scaffold_sends_one_float32_per_parameter_each_way_and_builds_its_halves():
    from pipeline.paradigms.federated.strategies import ControlVariates, GlobalVariate

    strategy = build_strategy("scaffold", FederatedConfig(scaffold={"lr": 0.5}), flat_layout(5, 3), 4)
    assert strategy.down_parts() == [(torch.float32, 3)] == strategy.up_parts()
    assert message_bytes(strategy.up_parts()) == 12
    client = strategy.client_half()
    assert type(client) is ControlVariates and client.params.tolist() == [True] * 3 + [False] * 2
    assert (client.controls, client.correction, client.change) == ({}, [], None)
    server = strategy.server_half()
    assert type(server) is GlobalVariate and (server.lr, server.num_clients) == (0.5, 4)
    assert torch.equal(server.control, torch.zeros(3)) and server.message()[0] is server.control


def test_scaffold_client_variates_are_the_gradients_and_correct_by_c_minus_c_i():
    """The real local trainer on a tiny batch-norm model (its running mean and variance: statistics, with no variate),
    two clients whose data fit one batch, one plain SGD step (lr 0.5) a round. g_i(w): client i's gradient at w by
    autograd, of its mean cross-entropy over all its data in one training-mode pass. Every c_i starts at zero.
    Round 1 (w0, c1): client 7 steps along g_7(w0) + c1 - 0, sends g_7(w0) - 0 and keeps c_7 = g_7(w0); client 8
    likewise with its own c_8 = 0. Round 2 (w1, c2): client 7 steps along g_7(w1) + c2 - g_7(w0) and sends
    g_7(w1) - g_7(w0); client 8 is corrected by c2 - g_8(w0). Statistics get no correction: they move by the batch's
    own statistics alone."""
    from pipeline.paradigms.federated.strategies import ControlVariates

    lr, cfg = 0.5, ModelConfig(hidden_sizes=[4], dropout=0.0, batch_norm=True)
    seed_everything(0)
    model = build_classifier(cfg, (3,), 2)
    layout = StateLayout.of(model)
    params = layout.param_mask()
    n = int(params.sum())
    assert 0 < n < layout.numel  # the running statistics sit between the parameters
    half = ControlVariates(params)
    sgd = TrainerConfig(accelerator="cpu", optimizer="sgd", lr=lr, momentum=0.0)
    trainer = LocalTrainer(
        model, 2, sgd, Codec("none", layout), batch_size=8, objective=half, down_parts=((torch.float32, n),)
    )
    generator = torch.Generator().manual_seed(0)
    seven = Client(7, torch.randn(5, 3, generator=generator), torch.tensor([0, 1, 1, 0, 1]))
    eight = Client(8, torch.randn(6, 3, generator=generator), torch.tensor([1, 1, 0, 1, 0, 0]))
    zero = torch.zeros(n)

    def by_autograd(weights, client, correction):
        """g_i at ``weights`` (parameter positions), and ``weights`` after one SGD step along g_i + ``correction``
        on parameters, with the statistics as that training-mode pass over the client's data left them."""
        reference = build_classifier(cfg, (3,), 2)
        state = reference.state_dict()
        for name, view in zip(layout.names, layout.views(weights)):
            state[name].copy_(view)
        named = dict(reference.named_parameters())
        reference.train()
        loss = torch.nn.functional.cross_entropy(reference(client.X), client.y)
        grads = torch.autograd.grad(loss, [named[name] for name in layout.names if name in named])
        gradient = torch.cat([g.reshape(-1) for g in grads])
        stepped = torch.cat([reference.state_dict()[name].reshape(-1) for name in layout.names])
        stepped[params] = weights[params] - lr * (gradient + correction)
        return gradient, stepped

    def scaffold_round(client, weights, control):
        """The client's answer to the server's message: its new weights, and the change of its c_i."""
        reply, _ = trainer.round(client, to_bytes([weights, control]), 1, torch.Generator().manual_seed(1))
        assert (half.change, half.correction) == (None, [])  # personalisation afterwards trains uncorrected
        return from_bytes(reply, [(torch.float32, layout.numel), (torch.float32, n)])

    w0 = trainer.weights()
    g7_w0, plain = by_autograd(w0, seven, zero)
    trainer.train(seven, torch.Generator().manual_seed(1), epochs=1)  # before any message: nothing to correct
    torch.testing.assert_close(trainer.weights(), plain)

    c1 = torch.randn(n, generator=generator)
    update7, sent7 = scaffold_round(seven, w0, c1)
    torch.testing.assert_close(update7, by_autograd(w0, seven, c1 - zero)[1])
    torch.testing.assert_close(sent7, g7_w0 - zero)
    torch.testing.assert_close(half.client_state(seven), g7_w0)
    assert not torch.equal(update7[~params], w0[~params])  # the statistics moved, by the batch alone
    _, plain = by_autograd(update7, seven, zero)
    trainer.train(seven, torch.Generator().manual_seed(1), epochs=1)  # personalisation: uncorrected
    torch.testing.assert_close(trainer.weights(), plain)

    update8, sent8 = scaffold_round(eight, w0, c1)  # another client: its own c_i, zero so far
    g8_w0, stepped = by_autograd(w0, eight, c1 - zero)
    torch.testing.assert_close(update8, stepped)
    torch.testing.assert_close(sent8, g8_w0 - zero)

    w1, c2 = fedavg([update7, update8], [5, 6]), c1 + (sent7 + sent8) / 2
    update7, sent7 = scaffold_round(seven, w1, c2)
    g7_w1, stepped = by_autograd(w1, seven, c2 - g7_w0)
    torch.testing.assert_close(update7, stepped)
    torch.testing.assert_close(sent7, g7_w1 - g7_w0)
    assert not torch.allclose(g7_w1, g7_w0, atol=1e-3) and not torch.allclose(g7_w0, g8_w0, atol=1e-3)

    trainer.start_from(w1)  # client 8's round 2 hook by hook: the correction on every parameter, none on a statistic
    half.on_message(trainer, eight, [c2])
    named = dict(model.named_parameters())
    assert [id(p) for p, _ in half.correction] == [id(named[name]) for name in layout.names if name in named]
    torch.testing.assert_close(torch.cat([c.reshape(-1) for _, c in half.correction]), c2 - g8_w0)
    for param, _ in half.correction:
        param.grad = torch.full_like(param, 0.5)
    half.correct_gradients()
    torch.testing.assert_close(torch.cat([p.grad.reshape(-1) for p, _ in half.correction]), 0.5 + c2 - g8_w0)
    g8_w1, _ = by_autograd(w1, eight, zero)
    (sent8,) = half.reply(trainer, eight)
    torch.testing.assert_close(sent8, g8_w1 - g8_w0)
    assert (half.change, half.correction) == (None, [])
    assert half.controls.keys() == {7, 8}
    torch.testing.assert_close(half.controls[7], g7_w1)
    torch.testing.assert_close(half.controls[8], g8_w1)


def test_scaffold_client_state_is_handed_out_and_taken_back():
    from types import SimpleNamespace

    from pipeline.paradigms.federated.strategies import ControlVariates

    half = ControlVariates(torch.tensor([True, True]))
    seven, nine = SimpleNamespace(id=7), SimpleNamespace(id=9)
    assert half.client_state(seven) is None
    state = torch.tensor([1.0, 2.0])
    half.restore_client_state(seven, state)
    assert half.client_state(seven) is state and half.client_state(nine) is None
    half.restore_client_state(nine, None)  # a client with no variate yet: nothing to take back, no error
    half.restore_client_state(seven, None)
    assert half.controls == {}


def test_scaffold_server_moves_c_by_the_sum_of_changes_over_all_clients_and_steps_lr_along_the_mean():
    """N = 4, lr 0.5. Round 1: changes [1, 2] and [3, -2] sum to [4, 0]: c = [1, 0]. The step: global [1, 1, (5)],
    mean [3, 0, (7)]: [1 + 0.5 x 2, 1 + 0.5 x -1, 7]. Round 2: a change [4, 4] alone: c = [1, 0] + [1, 1]."""
    half = build_strategy("scaffold", FederatedConfig(scaffold={"lr": 0.5}), flat_layout(3, 2), 4).server_half()
    half.receive([torch.tensor([1.0, 2.0])], 3)
    half.receive([torch.tensor([3.0, -2.0])], 1)
    assert torch.equal(
        half.step(torch.tensor([1.0, 1.0, 5.0]), torch.tensor([3.0, 0.0, 7.0])), torch.tensor([2.0, 0.5, 7.0])
    )
    half.close_round(2)
    assert torch.equal(half.control, torch.tensor([1.0, 0.0])) and half.message()[0].tolist() == [1.0, 0.0]
    half.receive([torch.tensor([4.0, 4.0])], 9)
    half.close_round(1)
    assert torch.equal(half.control, torch.tensor([2.0, 1.0]))
    half.close_round(0)  # nobody reported: c stays
    assert torch.equal(half.control, torch.tensor([2.0, 1.0]))


def test_scaffold_server_sums_the_changes_in_float64():
    """2^24 + 1 + 1 rounds to 2^24 in float32: over N = 3, c is 5592406 only from a float64 sum."""
    from pipeline.paradigms.federated.strategies import GlobalVariate

    half = GlobalVariate(torch.tensor([True]), 1.0, 3)
    for change in (2.0**24, 1.0, 1.0):
        half.receive([torch.tensor([change])], 1)
    half.close_round(3)
    assert half.control.dtype == torch.float32 and half.control.item() == 5592406.0
