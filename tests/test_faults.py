"""Faults from outside the project (a dead tracking server, a corrupt store, an unwritable folder, a killed
process, the wrong Python) give one line and an exit code, and leave nothing a later run trusts."""

from __future__ import annotations

import ast
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
from pipeline.environment import NEEDED
from pipeline.errors import OutsideFault
from pipeline.failures import FAULT_EXIT, describe
from pipeline.io import THIS_HOST, atomic_dir
from pipeline.leftovers import removed_line
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
    assert not (tmp_path / "metrics" / "pretrain").exists()  # the run list the comparison reads


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


def killed_stages_leftovers(root) -> tuple[list, list]:
    """What stages killed mid-write left, in and beside the output folders (their process gone); and what must stay:
    a live process's, another machine's, a name that is not a temporary output's, a folder not the pipeline's."""
    gone, live = dead_process().pid, os.getpid()
    abandoned = [
        root / "models" / f".federated.{THIS_HOST}-{gone}.abc123.tmp",  # a stage's models, a folder
        root / "plots" / "finetune" / f".curve.json.{THIS_HOST}-{gone}.def456.tmp.json",  # another stage's file
        root / "metrics" / "finetune" / "lora" / f".r2.json.{THIS_HOST}-{gone}.ghi789.tmp.json",
        root / "data" / "prepared" / f".full.npz.{THIS_HOST}-{gone}.jkl012.tmp.npz",
        root / "data" / f".prepared.{THIS_HOST}-{gone}.mno345.tmp",  # the output folder's own, beside it
        root / "reports" / f".comparison.md.{THIS_HOST}-{gone}.pqr678.tmp.md",
    ]
    kept = [
        root / "models" / f".distill.{THIS_HOST}-{live}.stu901.tmp",
        root / "plots" / f".multitask.elsewhere-{gone}.vwx234.tmp",
        root / "models" / "finetune" / f"notes.{THIS_HOST}-{gone}.yza567.tmp",
        root / "labelling" / f".round_01.{THIS_HOST}-{gone}.bcd890.tmp",
    ]
    for path in abandoned + kept:
        if path.suffix == ".tmp":
            (path / "half-written").mkdir(parents=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("half-written")
    return abandoned, kept


def test_a_stage_removes_the_temporary_outputs_any_killed_stage_left(tracking_dir, capsys):
    """Not only its own: the stage that left them may be cached and never run again."""
    write_params(tracking_dir)
    abandoned, kept = killed_stages_leftovers(tracking_dir)
    stage_entry(lambda params: None)()
    removed = [line for line in capsys.readouterr().err.splitlines() if line.startswith("removed ")]
    assert sorted(removed) == sorted(removed_line(path.relative_to(tracking_dir)) for path in abandoned)
    assert [path for path in abandoned if path.exists()] == [] and all(path.exists() for path in kept)


def test_tidy_cleans_up_after_killed_stages_and_says_nothing_when_all_is_clean(tracking_dir):
    """`make run` runs it before `dvc repro`: a killed stage's runs and temporary outputs, whatever DVC then runs."""
    write_params(tracking_dir)
    client = MlflowClient()
    gone = dead_process()
    tags = owner_tags() | {"owner_pid": str(gone.pid), "owner_started": f"{gone.create_time():.2f}"}
    orphan = client.create_run(client.create_experiment("paradigm-lab"), tags=tags)
    abandoned, kept = killed_stages_leftovers(tracking_dir)
    env = os.environ | {"PYTHONPATH": str(PROJECT_ROOT)}
    tidy = lambda: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "pipeline.tidy"], cwd=tracking_dir, env=env, capture_output=True, text=True, timeout=120
    )
    first = tidy()
    assert first.returncode == 0, first.stderr
    assert sorted(first.stdout.splitlines()) == sorted(removed_line(p.relative_to(tracking_dir)) for p in abandoned)
    assert "tracking: marked KILLED 1 run(s) whose process ended while RUNNING" in first.stderr
    assert client.get_run(orphan.info.run_id).info.status == "KILLED"
    assert [path for path in abandoned if path.exists()] == [] and all(path.exists() for path in kept)
    again = tidy()
    assert again.returncode == 0 and again.stdout == "" and again.stderr == "", again.stderr


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


# Every command a user runs, with options that would get past its parser.
ENTRY_POINTS = {
    "stage": ["stages.prepare"],
    "sweep": ["pipeline.sweep", "finetune", "--n-trials", "1"],
    "profile": ["pipeline.profile", "params-gpu.yaml"],
    "compare": ["pipeline.compare"],
    "tidy": ["pipeline.tidy"],
    "annotate": ["pipeline.paradigms.active_learning.annotate", "status"],
    "flower": ["pipeline.paradigms.federated.flower", "export", "app"],
}
ACTIVATE = "activate it first (source .venv/bin/activate), or run make setup"
SET_UP = "run make setup, then activate it (source .venv/bin/activate); or pip install -e . into this Python"
INSTALL = "install the project into it (pip install -e .)"


def run_by(python: list[str], folder, module: list[str]) -> subprocess.CompletedProcess:
    """``python -m module`` in ``folder``, the project's code importable but not necessarily its packages."""
    env = os.environ | {"PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run([*python, "-m", *module], cwd=folder, env=env, capture_output=True, text=True, timeout=60)


def environment_error(done: subprocess.CompletedProcess, python: str) -> str:
    """The one line a command run by a Python without the project's packages ends with (no traceback)."""
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: {python} is not the project's environment (it lacks torch, lightning, "), line
    return line


@pytest.mark.parametrize("with_venv", [True, False], ids=["venv-there", "no-venv"])
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_every_entry_point_run_by_another_python_says_how_to_use_the_projects(tmp_path, entry, with_venv):
    """As in a terminal where .venv is not activated (or `dvc repro` finding another `python` on PATH)."""
    bare = [sys.executable, "-S"]  # -S: this Python without its installed packages
    assert subprocess.run([*bare, "-c", "import torch"], capture_output=True).returncode == 1, "-S still sees torch"
    if with_venv:
        (tmp_path / ".venv" / "bin").mkdir(parents=True)
    line = environment_error(run_by(bare, tmp_path, ENTRY_POINTS[entry]), sys.executable)
    assert line.endswith(": " + (ACTIVATE if with_venv else SET_UP)), line


def test_the_environment_itself_without_the_packages_says_to_install_them(tmp_path):
    """A .venv made but never filled (`python -m venv .venv` alone), activated."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / ".venv")], check=True, timeout=60)
    python = str(tmp_path / ".venv" / "bin" / "python")
    line = environment_error(run_by([python], tmp_path, ENTRY_POINTS["sweep"]), python)
    assert line.endswith(": " + INSTALL), line


def test_the_environment_check_covers_every_package_the_code_imports():
    """A package imported by pipeline/ or stages/ but not in NEEDED would end a command in a traceback again."""
    first_party, optional = {"pipeline", "stages"}, {"flwr", "torchvision"}  # optional: checked where used
    imported = set()
    for path in [*(PROJECT_ROOT / "pipeline").rglob("*.py"), *(PROJECT_ROOT / "stages").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module)
    third_party = {
        name
        for name in imported
        if name.split(".")[0] not in sys.stdlib_module_names | first_party | optional | {"__future__"}
    }
    unchecked = {name for name in third_party if not any(name == n or name.startswith(n + ".") for n in NEEDED)}
    assert not unchecked, f"add to pipeline.environment.NEEDED: {sorted(unchecked)}"
