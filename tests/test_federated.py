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
    params = torch.tensor([True, True, False])
    start, mean = torch.tensor([1.0, 1.0, 5.0]), torch.tensor([2.0, 0.0, 7.0])
    plain = ServerMomentum(params, lr=1.0, momentum=0.0).step(start, mean)
    assert torch.equal(plain, mean)  # no momentum, lr 1: FedAvg
    adam = ServerAdam(params, lr=0.1, beta1=0.9, beta2=0.99, tau=1e-3).step(start, mean)
    assert adam[2] == 7.0  # a running statistic takes the mean
    # lr x m / (sqrt(v) + tau) after one change of 1
    first_step = 0.1 * (1 - 0.9) * 1.0 / ((1 - 0.99) ** 0.5 * 1.0 + 1e-3)
    assert adam[0].item() == pytest.approx(1.0 + first_step) and adam[1].item() == pytest.approx(1.0 - first_step)
    layout = StateLayout(("w",), (torch.Size([3]),), (True,))
    for strategy in FEDERATED_STRATEGIES:
        assert (
            build_strategy(strategy, FederatedConfig(), layout, 4).server_half().step(start, mean).shape == start.shape
        )


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
