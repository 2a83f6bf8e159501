"""Federated learning on Flower: the flower engine against the in-process one, and the exported app on a real
SuperLink with SuperNodes as processes on loopback.

Tiny model, three clients, two rounds. Model dropout is off so that the engines' runs can be compared image for
image (the flower engine seeds dropout's masks per client request, the in-process engine once per run).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from pipeline.data.prepared import load_task
from pipeline.models.classifier import build_classifier
from pipeline.paradigms.federated.flower.export import client_file, export_app
from pipeline.paradigms.federated.layout import StateLayout
from pipeline.paradigms.federated.run import run_federated
from pipeline.paths import StagePaths
from pipeline.training.scores import classification_scores
from tests.conftest import make_params, pretrained_workspace, stage_paths
from tests.services import free_port, processes

BIN = Path(sys.executable).parent
CLIENTS, ROUNDS = 3, 2
START_SECONDS = 60  # a SuperLink or SuperNode that is not up by then has failed


def flower_params(**federated):
    settings = {
        "partitions": ["iid"],
        "strategies": ["scaffold"],
        "rounds": ROUNDS,
        "client_fraction": 1.0,
        "personalization_steps": 0,
        "centralized": False,
        "batched": False,
        "flower": {"round_timeout": 120},
    } | federated
    return make_params(
        model={"dropout": 0.0},
        active_learning={"strategies": ["random"]},
        prepare={"federated": {"num_clients": CLIENTS}},
        federated=settings,
    )


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    with pretrained_workspace(tmp_path_factory.mktemp("flower"), flower_params()) as root:
        yield root


def test_the_flower_engine_runs_the_same_rounds_as_the_inprocess_engine(prepared):
    """SCAFFOLD: each client's control variate kept between its rounds in the node's Flower state."""
    pythonpath = os.environ.get("PYTHONPATH")
    inprocess = run_federated(flower_params(), stage_paths("federated", prepared, "inprocess"))["iid/scaffold"]
    flower = run_federated(flower_params(engine="flower"), stage_paths("federated", prepared, "flower"))["iid/scaffold"]
    client = MlflowClient()
    histories = {}
    for name, entry in (("inprocess", inprocess), ("flower", flower)):
        run = client.get_run(entry["run_id"])
        assert run.data.tags["engine"] == name
        histories[name] = [m.value for m in client.get_metric_history(entry["run_id"], "test/acc")]
    assert len(histories["flower"]) == ROUNDS
    assert os.environ.get("PYTHONPATH") == pythonpath  # Ray's setting undone: later subprocesses inherit it
    assert histories["flower"] == histories["inprocess"]
    for key in ("comm/bytes_down_total", "comm/bytes_up_total", "test/acc"):
        assert flower[key] == inprocess[key], key


def wait_for_port(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited with {proc.returncode}: {proc.args}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"nothing listens on {port} after {START_SECONDS} s: {proc.args}")


def run_on_superlink(exported: Path, port: int, env: dict, timeout: float) -> subprocess.CompletedProcess:
    """``flower run`` of the exported app against the SuperLink on loopback ``port``, as a user runs it."""
    command = ["run", str(exported), "--superlink", f"127.0.0.1:{port}", "--insecure"]
    return subprocess.run(
        [sys.executable, "-m", "pipeline.paradigms.federated.flower", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_exported_app_runs_on_a_superlink_and_a_crashed_client_is_a_dropout(prepared, tmp_path):
    params = flower_params(strategies=["fedavg"])
    exported = tmp_path / "exported"
    export_app(params, exported, paths=StagePaths.of("federated", prepared))
    superlink = free_port()
    env = os.environ | {  # the SuperLink and SuperNodes start Flower's other commands from PATH
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "FLWR_HOME": str(tmp_path / "flwr-home"),
        "FLWR_TELEMETRY_ENABLED": "0",
    }
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(name: str, *args: str) -> subprocess.Popen:
        out = open(logs / f"{name}.log", "w")
        return subprocess.Popen(
            [str(BIN / args[0]), *args[1:]], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    with processes() as started:
        started.append(
            start(
                "superlink",
                "flower-superlink",
                "--insecure",
                "--disable-runtime-dependency-installation",
                "--port",
                str(superlink),
            )
        )
        wait_for_port(superlink, started[0])
        for k in range(CLIENTS):
            data = client_file(exported, k) if k < CLIENTS - 1 else tmp_path / "lost.npz"  # the last one crashes
            started.append(
                start(
                    f"supernode-{k}",
                    "flower-supernode",
                    "--insecure",
                    "--superlink",
                    f"127.0.0.1:{superlink}",
                    "--port",
                    str(free_port()),
                    "--node-config",
                    f"partition-id={k} data='{data}'",
                )
            )
        done = run_on_superlink(exported, superlink, env, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr + "".join(p.read_text() for p in logs.iterdir())
    result = json.loads((exported / "output" / "result.json").read_text())
    metrics, history = result["metrics"], result["history"]
    assert metrics["fl/rounds"] == ROUNDS and [row["round"] for row in history] == [1, 2]
    assert [row["round/clients_reported"] for row in history] == [CLIENTS - 1] * ROUNDS  # the crashed one: a dropout
    data = load_task(prepared / "data/prepared/full.npz")
    model = build_classifier(params.model, data.input_shape, data.num_classes)
    weights = 4 * StateLayout.of(model).numel  # float32, no compression: the bytes each way per client
    assert metrics["comm/bytes_down_total"] == ROUNDS * CLIENTS * weights
    assert metrics["comm/bytes_up_total"] == ROUNDS * (CLIENTS - 1) * weights
    model.load_state_dict(torch.load(exported / "output" / "global.pt", weights_only=True))
    model.eval()
    with torch.no_grad():
        scores = classification_scores(model(torch.from_numpy(data.X["test"])), data.y["test"])
    assert scores["acc"] == pytest.approx(metrics["test/acc"]) and scores["acc"] > 2 / data.num_classes
    assert "client 2 failed" in done.stdout + done.stderr


def test_a_superlink_that_cannot_be_reached_is_one_line(prepared, tmp_path):
    exported = tmp_path / "exported"
    export_app(flower_params(), exported, paths=StagePaths.of("federated", prepared))
    port = free_port()  # nothing listens there
    done = run_on_superlink(exported, port, dict(os.environ), timeout=60)
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == [
        f"error: no Flower SuperLink reachable at 127.0.0.1:{port} (Connection refused): start one there "
        "(flower-superlink --port ...) or correct --superlink"
    ]


def test_the_flower_engine_without_flwr_is_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text("federated:\n  engine: flower\n")
    hide_flwr = (
        "import sys, runpy; sys.modules['flwr'] = None; runpy.run_module('stages.federated', run_name='__main__')"
    )
    done = subprocess.run([sys.executable, "-c", hide_flwr], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: federated.engine = 'flower' needs the flwr package") and "make setup" in line
