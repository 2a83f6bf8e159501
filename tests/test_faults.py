"""Faults from outside the project (a dead tracking server, a corrupt store, an unwritable folder, a killed
process, the wrong Python) give one line and an exit code, and leave nothing a later run trusts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Iterator

import mlflow
import psutil
import pytest
import yaml
from mlflow.tracking import MlflowClient

from pipeline.config.schema import TrackingConfig
from pipeline.errors import OutsideFault
from pipeline.failures import FAULT_EXIT, describe
from pipeline.io import THIS_HOST, atomic_dir
from pipeline.stage import stage_entry
from pipeline.tracking.runs import git_tags
from pipeline.tracking.store import FAIL_FAST, close_orphaned_runs, open_store, owner_tags
from tests.conftest import PROJECT_ROOT, make_params

DEAD_SERVER = "http://127.0.0.1:1"


def write_params(folder, **tracking) -> None:
    (folder / "params.yaml").write_text(yaml.safe_dump(make_params(tracking=tracking).model_dump(mode="json")))


def stage_exit(capsys) -> tuple[int, str]:
    """Run a stage that does nothing once params and the store are checked: its exit code and its last line
    on stderr (before it, only MLflow's own log lines, never a traceback)."""
    with pytest.raises(SystemExit) as exit_:
        stage_entry(lambda params: None)()
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.endswith("\n")
    return exit_.value.code, err.splitlines()[-1]


def dead_process() -> psutil.Process:
    """A process that existed and is gone (its pid and start time, as a run's owner tags hold them)."""
    child = subprocess.Popen(["sleep", "60"])
    process = psutil.Process(child.pid)
    process.create_time()  # psutil caches it while the process lives
    child.send_signal(signal.SIGKILL)
    child.wait()
    return process


@pytest.fixture
def fail_fast_env(monkeypatch):
    """MLflow's HTTP settings as the user left them (unset), restored after the test."""
    for name in FAIL_FAST:
        monkeypatch.setenv(name, "0")
        monkeypatch.delenv(name)


def test_unreachable_tracking_server_fails_in_seconds_in_one_line(tmp_path, monkeypatch, capsys, fail_fast_env):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", DEAD_SERVER)
    started = time.perf_counter()
    code, err = stage_exit(capsys)
    assert time.perf_counter() - started < 15
    assert code == FAULT_EXIT and err.startswith("error: ")
    assert (
        err.startswith(f"error: the MLflow tracking server {DEAD_SERVER} is unreachable")
        and "MLFLOW_TRACKING_URI" in err
    )
    assert not (tmp_path / "mlflow.db").exists()


def test_a_server_that_dies_mid_run_fails_within_seconds_not_minutes(monkeypatch, fail_fast_env):
    """MLflow's own retries (7, back-off factor 2: minutes) are lowered once the store is opened."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", DEAD_SERVER)
    with pytest.raises(OutsideFault):
        open_store(TrackingConfig())
    assert {name: os.environ[name] for name in FAIL_FAST} == FAIL_FAST
    started = time.perf_counter()
    with pytest.raises(Exception) as err:
        MlflowClient(DEAD_SERVER).search_experiments()
    assert time.perf_counter() - started < 15
    assert "is unreachable (no answer)" in describe(err.value)


def test_corrupt_store_says_to_move_it_aside(tracking_dir, capsys):
    write_params(tracking_dir)
    with mlflow.start_run(experiment_id=mlflow.create_experiment("paradigm-lab")):
        mlflow.log_metrics({f"m{i}": i for i in range(300)})
    db = tracking_dir / "mlflow.db"
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    code, err = stage_exit(capsys)
    assert code == FAULT_EXIT and err.startswith("error: ")
    assert f"error: the MLflow store sqlite:///{db}" in err and "is corrupt" in err and "mv mlflow.db" in err


def test_store_whose_folder_cannot_be_created(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("")
    write_params(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///a_file/store/mlflow.db")
    code, err = stage_exit(capsys)
    assert code == FAULT_EXIT and err.startswith("error: ")
    assert "sqlite:///a_file/store/mlflow.db" in err and "a parent of it is a file" in err


@contextmanager
def small_file_system(folder, *options: str) -> Iterator[None]:
    """A real tmpfs of 64 KiB mounted at ``folder`` (with mount ``options``, e.g. ``ro``), unmounted after."""
    folder.mkdir(parents=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(["size=64k", *options]), "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.skip(f"needs to mount a small file system, which this machine refuses: {mount.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize(
    ("options", "reason"), [(("ro",), "the file system is read-only"), ((), "the disk is full")], ids=["ro", "full"]
)
def test_an_unwritable_artifact_location_fails_the_stage_in_one_line_and_leaves_no_finished_run(
    tmp_path, options, reason
):
    from pipeline.data.prepare import prepare_data, write_prepared
    from pipeline.paths import StagePaths

    write_params(tmp_path)
    write_prepared(prepare_data(make_params()), StagePaths.of("prepare", tmp_path).data)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with small_file_system(tmp_path / "mlartifacts", *options):  # where the store keeps its runs' artifacts
        stage = subprocess.run(
            [sys.executable, "-m", "stages.pretrain"],
            cwd=tmp_path,
            env=os.environ | {"MLFLOW_TRACKING_URI": store},
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert stage.returncode == FAULT_EXIT and "Traceback" not in stage.stderr, stage.stderr
    last = stage.stderr.splitlines()[-1]
    assert last.startswith(f"error: cannot write {tmp_path / 'mlartifacts'}/") and reason in last, last
    client = MlflowClient(store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert runs and all(run.info.status == "FAILED" for run in runs)  # nothing reads the half-logged run as done
    assert not (tmp_path / "metrics" / "pretrain.json").exists()  # the run list the comparison reads


def test_runs_left_running_by_a_dead_process_are_marked_killed(tracking_dir):
    client = MlflowClient()
    experiment = client.create_experiment("paradigm-lab")
    gone = dead_process()
    dead = client.create_run(
        experiment, tags=owner_tags() | {"owner_pid": str(gone.pid), "owner_started": f"{gone.create_time():.2f}"}
    )
    alive = client.create_run(experiment, tags=owner_tags())
    elsewhere = client.create_run(experiment, tags=owner_tags() | {"owner_host": "another-machine", "owner_pid": "1"})
    untagged = client.create_run(experiment)
    assert close_orphaned_runs(client, experiment) == [dead.info.run_id]
    status = {run: client.get_run(run.info.run_id).info.status for run in (dead, alive, elsewhere, untagged)}
    assert list(status.values()) == ["KILLED", "RUNNING", "RUNNING", "RUNNING"]
    assert "killed" in client.get_run(dead.info.run_id).data.tags


def test_a_dead_processs_temporary_output_is_removed_by_the_next_write(tmp_path):
    out = tmp_path / "models" / "stage"
    out.mkdir(parents=True)
    gone = dead_process()
    abandoned = out.parent / f".stage.{THIS_HOST}-{gone.pid}.abc123.tmp"
    in_progress = out.parent / f".stage.{THIS_HOST}-{os.getpid()}.def456.tmp"
    another_machine = out.parent / f".stage.elsewhere-{gone.pid}.ghi789.tmp"
    for folder in (abandoned, in_progress, another_machine):
        (folder / "half-written").mkdir(parents=True)
    with atomic_dir(out) as tmp:
        (tmp / "model.pt").write_text("whole")
    assert not abandoned.exists() and in_progress.exists() and another_machine.exists()
    assert (out / "model.pt").read_text() == "whole"


def test_git_tags_say_when_the_working_tree_differs_from_the_commit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    (tmp_path / "dvc.lock").write_text("a\n")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "x"]):
        subprocess.run(["git", *args], check=True, env=os.environ | env)
    assert git_tags()["git_dirty"] == "false"
    (tmp_path / "dvc.lock").write_text("b\n")  # the pipeline's own output: not a change
    assert git_tags()["git_dirty"] == "false"
    (tmp_path / "params.yaml").write_text("seed: 2\n")
    tags = git_tags()
    assert tags["git_dirty"] == "true" and tags["git_changes"] == "params.yaml" and len(tags["git_commit"]) == 40


def test_a_stage_run_by_another_python_says_how_to_use_the_projects(tmp_path):
    """As when `.venv/bin/dvc repro` runs stages with a `python` on PATH that is not the environment's."""
    started = subprocess.run(
        [sys.executable, "-S", "-m", "stages.prepare"],  # -S: this Python without its installed packages
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 2 and started.stderr.count("\n") == 1, started.stderr
    assert "is not the project's environment (it lacks torch" in started.stderr and "make run" in started.stderr
