"""Optuna sweeps of a stage on a real storage and a real MLflow store, with real worker processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from pipeline.config.edit import apply_to_params, exp_run_command
from pipeline.config.loading import load_params
from pipeline.data.prepare import prepare_data, write_prepared
from pipeline.errors import ConfigError
from pipeline.paradigms.scratch.run import run_scratch
from pipeline.sweep.objective import pruning
from pipeline.sweep.run import run_sweep
from pipeline.sweep.study import storage_for
from tests.conftest import PROJECT_ROOT, make_params

LR = {"type": "float", "low": 0.001, "high": 0.01, "log": True}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Prepared data where the stages look for it, and a params.yaml with a scratch sweep."""
    root = tmp_path_factory.mktemp("sweep")
    params = make_params(trainer={"max_epochs": 2}, sweep={"scratch": {"space": {"scratch.trainer.lr": LR}}})
    write_prepared(prepare_data(params), root / "data" / "prepared")
    (root / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
    return root, params


@pytest.fixture
def inside(workspace, monkeypatch, tmp_path):
    root, params = workspace
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return root, params, tmp_path


def children(client: MlflowClient, parent: str) -> list:
    experiment = client.get_run(parent).info.experiment_id
    return client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent}'")


@pytest.mark.parametrize("storage", ["journal", "sqlite"])
def test_two_workers_on_one_storage_run_exactly_the_trials_asked_for(workspace, tmp_path, storage):
    root, _ = workspace
    url = f"journal:{tmp_path / 'study.log'}" if storage == "journal" else f"sqlite:///{tmp_path / 'study.db'}"
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    MlflowClient(env["MLFLOW_TRACKING_URI"]).search_experiments()  # the store exists (as after any dvc repro): two
    # processes creating a new SQLite MLflow store at once race on its schema migration
    command = [
        sys.executable,
        "-m",
        "pipeline.sweep",
        "scratch",
        "--n-trials",
        "6",
        "--study",
        "shared",
        "--storage",
        url,
    ]
    workers = [
        subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    ran = [int(re.search(r"this worker ran (\d+) trials", out).group(1)) for out, _ in outputs]
    assert sum(ran) == 6
    trials = optuna.load_study(study_name="shared", storage=storage_for(url)).get_trials()
    assert sorted(t.number for t in trials) == list(range(6))  # none lost, none duplicated
    assert all(t.state.is_finished() for t in trials)
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("paradigm-lab").experiment_id
    parents = client.search_runs([experiment], "tags.sweep_study = 'shared' and tags.sweep_role = 'parent'")
    assert len(parents) == 1
    assert sorted(int(r.data.tags["trial_number"]) for r in children(client, parents[0].info.run_id)) == list(range(6))


def test_parent_holds_best_params_and_plots_and_children_their_trials(inside):
    _, params, tmp_path = inside
    result = run_sweep(params, "scratch", 3, "one", f"sqlite:///{tmp_path / 'optuna.db'}")
    client = MlflowClient()
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials/complete"] == 3
    assert parent.data.metrics["best/val/best_loss"] == pytest.approx(result.best_value)
    assert float(parent.data.tags["best.scratch.trainer.lr"]) == pytest.approx(result.best_params["scratch.trainer.lr"])
    assert {a.path for a in client.list_artifacts(result.parent_run_id, "plots")} == {
        "plots/optimization_history.png",
        "plots/param_importances.png",
    }
    kids = children(client, result.parent_run_id)
    assert len(kids) == 3 and {k.data.tags["trial_state"] for k in kids} == {"complete"}
    for kid in kids:
        assert 0.001 <= float(kid.data.params["scratch.trainer.lr"]) <= 0.01
        assert "objective/val/best_loss" in kid.data.metrics
        (stage_run,) = children(client, kid.info.run_id)  # the stage's own run, nested under its trial
        assert stage_run.data.tags["stage"] == "scratch"
        assert stage_run.data.params["scratch.trainer.lr"] == kid.data.params["scratch.trainer.lr"]


@pytest.mark.parametrize(
    "space, message",
    [
        (
            {"scratch.trainer.lrr": LR},
            r"unknown key 'scratch.trainer.lrr': 'lrr' is not in scratch.trainer; allowed there: .*lr",
        ),
        (
            {"finetune.lora.r": {"type": "int", "low": 1, "high": 4}},
            r"'finetune.lora.r' is not a param the scratch stage reads",
        ),
        (
            {"scratch.trainer.lr": {"type": "float", "low": -1.0, "high": 0.01}},
            r"scratch.trainer.lr = -1.0 give invalid params",
        ),
    ],
)
def test_a_bad_search_space_fails_before_any_trial(inside, space, message):
    _, params, tmp_path = inside
    params = params.model_copy(update={"sweep": make_params(sweep={"scratch": {"space": space}}).sweep})
    with pytest.raises(ConfigError, match=message):
        run_sweep(params, "scratch", 3, "bad", f"sqlite:///{tmp_path / 'optuna.db'}")
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(inside):
    _, params, tmp_path = inside
    # valid params that fail when the trial runs: no Apple GPU (mps) on Linux, so Lightning refuses it
    failing = {"scratch.trainer.accelerator": {"type": "categorical", "choices": ["cpu", "mps"]}}
    params = params.model_copy(update={"sweep": make_params(sweep={"scratch": {"space": failing}}).sweep})
    result = run_sweep(params, "scratch", 6, "failing", f"sqlite:///{tmp_path / 'optuna.db'}")
    states = [t.state for t in result.study.get_trials()]
    assert len(states) == 6 and optuna.trial.TrialState.FAIL in states and optuna.trial.TrialState.COMPLETE in states
    kids = children(MlflowClient(), result.parent_run_id)
    failed = [k for k in kids if k.data.tags["trial_state"] == "failed"]
    assert failed and all(k.info.status == "FAILED" and k.data.tags["error"] for k in failed)
    assert all(k.data.params["scratch.trainer.accelerator"] == "mps" and "MPS" in k.data.tags["error"] for k in failed)


def test_a_fit_reports_each_epoch_and_stops_when_the_pruner_gives_up(inside):
    _, params, _ = inside
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.0))  # any positive loss is pruned
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned, match="after epoch 1 of fit 1"), pruning(trial, "val/best_loss"):
        run_scratch(params)
    assert list(study.trials[0].intermediate_values) == [0]


def test_apply_writes_the_best_params_keeping_comments_and_order(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text((PROJECT_ROOT / "params.yaml").read_text())
    before = path.read_text()
    apply_to_params(path, {"finetune.trainer.lr": 0.002, "finetune.lora.r": 4})
    after = path.read_text()
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert len(before.splitlines()) == len(after.splitlines())
    assert changed == [
        ("    r: 2", "    r: 4"),
        ("  trainer: {max_epochs: 100}", "  trainer: {max_epochs: 100, lr: 0.002}"),
    ]
    applied = load_params(path)
    assert applied.trainer_for("finetune").lr == 0.002 and applied.finetune.lora.r == 4
    assert (
        exp_run_command({"finetune.lora.r": 4, "finetune.strategies": ["lora"]})
        == "dvc exp run -S finetune.lora.r=4 -S 'finetune.strategies=[\"lora\"]'"
    )


def test_a_worker_past_its_timeout_takes_no_new_trial_and_leaves_them_for_others(inside):
    _, params, tmp_path = inside
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = run_sweep(params, "scratch", 3, "timed", storage, timeout_s=0)
    assert first.ran == 0 and [t.state for t in first.study.get_trials()] == [optuna.trial.TrialState.WAITING] * 3
    second = run_sweep(params, "scratch", 3, "timed", storage)  # joins the study: runs the three waiting trials
    assert second.ran == 3 and all(t.state.is_finished() for t in second.study.get_trials())


def test_a_sweep_may_not_select_on_the_test_split():
    with pytest.raises(ConfigError, match=r"sweep.scratch.metric = 'test/acc'.*validation metrics only"):
        make_params(sweep={"scratch": {"metric": "test/acc", "space": {"scratch.trainer.lr": LR}}})
