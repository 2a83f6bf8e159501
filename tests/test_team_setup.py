"""Past one machine, for real: a DVC remote that a fresh clone pulls from, queued experiments run two at a time,
every stage logging to a team tracking server (``mlflow server`` on PostgreSQL, artifacts proxied, MLflow's
basic-auth app behind TLS) as a user who may write to the experiment; and the users it must refuse.

A small pipeline (prepare and pretrain of the project's dvc.yaml, tiny params) in a new git repo; what runs
the whole pipeline against the team server is tests/test_dvc_pipeline.py.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline.failures import FAULT_EXIT
from pipeline.tracking.contract import CONTRACT_METRICS
from tests.conftest import make_params, pipeline_repo, sh

TARGET = "pretrain"  # with prepare before it: what these tests reproduce
QUEUED_LRS = (0.002, 0.004, 0.008)
QUEUE_SECONDS = 420


@pytest.fixture(scope="module")
def team(tmp_path_factory, team_server):
    """A repo whose prepare and pretrain ran against the team server and were pushed to a local-folder remote."""
    root = tmp_path_factory.mktemp("team")
    repo = root / "repo"
    env = pipeline_repo(repo, make_params(trainer={"max_epochs": 2}), team_server.url) | team_server.env("alice")
    sh(["git", "init", "-q"], repo, env)
    sh(["dvc", "remote", "add", "-d", "shared", str(root / "remote")], repo, env)
    sh(["dvc", "repro", TARGET], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "pipeline and its lock"], repo, env)
    sh(["dvc", "push"], repo, env)
    try:
        yield repo, env, team_server
    finally:
        subprocess.run(["dvc", "queue", "stop", "--kill"], cwd=repo, env=env, capture_output=True, timeout=60)


def test_a_fresh_clone_pulls_the_outputs_from_the_remote_and_has_nothing_to_reproduce(team, tmp_path):
    repo, env, _ = team
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    assert not (clone / "models" / "pretrain" / "base.pt").exists()  # in the remote, not in git
    sh(["dvc", "pull", "--with-deps", TARGET], clone, env)
    for output in ("data/prepared/full.npz", "data/prepared/source.npz", "models/pretrain/base.pt"):
        assert (clone / output).read_bytes() == (repo / output).read_bytes(), output
    again = sh(["dvc", "repro", TARGET], clone, env).stdout
    assert "Running stage" not in again and "Data and pipelines are up to date." in again, again


def test_queued_experiments_run_two_at_a_time_and_log_to_the_team_server(team):
    repo, env, server = team
    for lr in QUEUED_LRS:
        sh(["dvc", "exp", "run", "--queue", "-S", f"{TARGET}.trainer.lr={lr}", TARGET], repo, env)
    sh(["dvc", "queue", "start", "--jobs", "2"], repo, env)
    client = MlflowClient(server.uri("alice"))
    experiment_id = client.get_experiment_by_name(server.experiment).experiment_id
    deadline = time.monotonic() + QUEUE_SECONDS
    for tick in itertools.count():
        # the server is asked each second (cheap); DVC (a process start) once the runs ended, or every 10 s, so
        # that a failed experiment ends the wait
        ended = len(queued_runs(client, experiment_id)) == len(QUEUED_LRS)
        status = sh(["dvc", "queue", "status"], repo, env).stdout if ended or tick % 10 == 9 else ""
        if status and not any(word in status for word in ("Queued", "Running")):
            break
        assert time.monotonic() < deadline, f"the queue did not finish in {QUEUE_SECONDS} s:\n{status}"
        time.sleep(1)
    assert status.count("Success") == len(QUEUED_LRS), status
    shown = json.loads(sh(["dvc", "exp", "show", "--json"], repo, env).stdout)
    experiments = [exp for commit in shown for exp in (commit.get("experiments") or [])]
    lrs, accuracies = set(), []
    for experiment in experiments:
        data = experiment["revs"][0]["data"]
        lrs.add(data["params"]["params.yaml"]["data"][TARGET]["trainer"]["lr"])
        accuracies.append(data["metrics"][f"metrics/{TARGET}/base.json"]["data"]["acc"])  # its one variant's
    assert lrs == set(QUEUED_LRS) and len(accuracies) == len(QUEUED_LRS)
    queued = queued_runs(client, experiment_id)
    assert sorted(float(run.data.params["trainer.lr"]) for run in queued) == sorted(QUEUED_LRS)
    for run in queued:  # two stages logging at once: each run whole, every epoch of its history there
        assert set(CONTRACT_METRICS) <= set(run.data.metrics), set(CONTRACT_METRICS) - set(run.data.metrics)
        epochs = int(run.data.metrics["train/epochs"])
        steps = {m.step for m in client.get_metric_history(run.info.run_id, "val/loss")}
        assert epochs > 0 and len(steps) >= epochs, (epochs, sorted(steps))


def queued_runs(client: MlflowClient, experiment: str) -> list:
    """The finished runs of the queued experiments on the team server."""
    runs = client.search_runs([experiment], f"tags.stage = '{TARGET}' and attributes.status = 'FINISHED'")
    return [run for run in runs if float(run.data.params["trainer.lr"]) in QUEUED_LRS]


CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
OUTPUTS = ("models/pretrain/base.pt", "metrics/pretrain/base.json", "plots/pretrain/history.csv")
REFUSED = {  # who runs the stage (user, password: None for theirs) and the line the server's refusal gives
    "a user who may only read": ("bob", None, "403: user bob may not write to experiment paradigm-lab (its permission "
                                 "there is READ) on the MLflow tracking server https://127.0.0.1:"),
    "a wrong password": ("alice", "not-her-password", "401: the MLflow tracking server https://127.0.0.1:"),
    "no credentials": (None, None, "401: the MLflow tracking server https://127.0.0.1:"),
}  # fmt: skip


@pytest.mark.parametrize("who", REFUSED)
def test_a_stage_the_server_refuses_fails_in_seconds_in_one_line_and_writes_nothing(team, who):
    """Before any training: no progress line, no run on the server, every output as it was, exit 3 and one line
    that names the status, the user and what to do."""
    repo, env, server = team
    user, password, said = REFUSED[who]
    client = MlflowClient(server.uri("alice"))
    experiment = client.get_experiment_by_name(server.experiment).experiment_id
    runs, outputs = len(client.search_runs([experiment])), {path: (repo / path).read_bytes() for path in OUTPUTS}
    started = time.perf_counter()
    failed = subprocess.run(
        [sys.executable, "-m", "stages.pretrain"],
        cwd=repo,
        env={key: value for key, value in env.items() if not key.startswith(CREDENTIALS)} | server.env(user, password),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert time.perf_counter() - started < 60  # the imports and one request: no training
    assert failed.returncode == FAULT_EXIT, failed.stderr
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {said}"), failed.stderr
    assert "Traceback" not in failed.stderr and "epoch" not in failed.stderr
    assert len(client.search_runs([experiment])) == runs
    assert {path: (repo / path).read_bytes() for path in OUTPUTS} == outputs


def test_a_user_who_may_read_browses_the_runs_but_may_not_write(team):
    _, _, server = team
    bob = MlflowClient(server.uri("bob"))
    experiment = bob.get_experiment_by_name(server.experiment).experiment_id
    assert {run.data.tags["stage"] for run in bob.search_runs([experiment])} >= {"prepare", TARGET}
    with pytest.raises(MlflowException) as refused:
        bob.create_run(experiment)
    assert refused.value.error_code == "PERMISSION_DENIED"
