"""Optuna sweeps of a stage on a real storage and a real MLflow store, with real worker processes."""

from __future__ import annotations

import importlib.util
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from ruamel.yaml import YAML

from pipeline.config.edit import apply_to_params, exp_run_command
from pipeline.config.loading import read_yaml
from pipeline.data.prepare import prepare_data, write_prepared
from pipeline.errors import ConfigError
from pipeline.paradigms.scratch.run import run_scratch
from pipeline.params import load_params
from pipeline.sweep.__main__ import main as sweep_main
from pipeline.sweep.objective import pruning
from pipeline.sweep.run import run_sweep
from pipeline.sweep.storage import GRACE_HEARTBEATS, storage_for
from pipeline.sweep.study import heartbeat, next_trial, open_study, retry_of
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


def worker_env(tmp_path) -> dict:
    """For worker processes: the project importable, and an MLflow store of the test's own that exists (as after
    any dvc repro): two processes creating a new SQLite MLflow store at once race on its schema migration."""
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    MlflowClient(env["MLFLOW_TRACKING_URI"]).search_experiments()
    return env


def sweep_command(*options: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.sweep", "scratch", *options]


class Worker:
    """A sweep worker process whose stderr lines are read as they come: into ``log``, and into ``lines`` with
    the other workers', to act when one of them is mid-trial."""

    def __init__(self, command: list[str], root, env: dict, lines: queue.Queue):
        self.process = subprocess.Popen(
            command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.log: list[str] = []
        self.reader = threading.Thread(target=self._read, args=(lines,), daemon=True)
        self.reader.start()

    def _read(self, lines: queue.Queue) -> None:
        for line in self.process.stderr:
            self.log.append(line)
            lines.put((self, line))


def first_to_print(workers: list[Worker], lines: queue.Queue, text: str, timeout_s: float) -> Worker:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            worker, line = lines.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            logs = "\n".join("".join(w.log)[-2000:] for w in workers)
            pytest.fail(f"no worker printed {text!r} in {timeout_s} s; their stderr:\n{logs}")
        if text in line:
            return worker


@pytest.fixture
def study_storage(request, tmp_path):
    """A study's storage URL of the kind the test is parametrized with; a PostgreSQL database is made for the test
    on the session's server (tests/services.py) and dropped after it."""
    kind = request.param
    if kind == "journal":
        yield f"journal:{tmp_path / 'study.log'}"
    elif kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'study.db'}"
    else:
        postgres = request.getfixturevalue("postgres")
        name = f"optuna_{tmp_path.name.lower().replace('-', '_')}"[:60]
        yield postgres.create(name)
        postgres.drop(name)


@pytest.mark.parametrize(
    ("study_storage", "num_workers"), [("journal", 2), ("sqlite", 2), ("postgresql", 3)], indirect=["study_storage"]
)
def test_workers_on_one_storage_run_exactly_the_trials_asked_for(workspace, tmp_path, study_storage, num_workers):
    root, _ = workspace
    url = study_storage
    env = worker_env(tmp_path)
    command = sweep_command("--n-trials", "6", "--study", "shared", "--storage", url)
    workers = [
        subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(num_workers)
    ]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    ran = [int(re.search(r"this worker ran (\d+) trials?;", out).group(1)) for out, _ in outputs]
    assert sum(ran) == 6
    for out, _ in outputs:  # the best params as a line of its own, to paste: a key params.yaml holds is set
        assert re.search(r"^  dvc exp run -S scratch\.trainer\.lr=[0-9.e-]+$", out, re.MULTILINE), out
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


def test_distill_sweeps_on_the_distilled_students_validation_loss(inside):
    _, params, tmp_path = inside
    space = {"distill.temperature": {"type": "float", "low": 1.0, "high": 8.0}}
    params = params.model_copy(update={"sweep": make_params(sweep={"distill": {"space": space}}).sweep})
    result = run_sweep(params, "distill", 2, "distill", f"sqlite:///{tmp_path / 'optuna.db'}")
    client = MlflowClient()
    for kid in children(client, result.parent_run_id):
        runs = {run.data.tags["variant"]: run for run in children(client, kid.info.run_id)}
        assert set(runs) == {"teacher", "student", "distilled"}  # the whole stage, per trial
        objective = kid.data.metrics["objective/val/distilled_best_loss"]
        assert objective == pytest.approx(runs["distilled"].data.metrics["val/best_loss"])


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


# params.yaml's tree as read, and values to set on it: held keys (one null), new ones, text the shell and Hydra
# would otherwise change (a space, quotes, a backslash, ``${``, text that reads as null)
HELD = {"trainer": {"lr": 0.001, "precision": "32"}, "finetune": {"strategies": None, "trainer": {}}}
VALUES = {
    "trainer.lr": 0.0003,
    "trainer.precision": "bf16-mixed",
    "finetune.strategies": ["lora", "full"],
    "finetune.trainer.lr": 1e-05,
    "finetune.lora.r": 8,
    "finetune.note": 'say "${x}" a\\b',
    "finetune.tag": "null",
    "model.channels": [8, 16],
}


def test_the_dvc_exp_run_line_adds_the_keys_params_yaml_lacks_and_quotes_for_the_shell():
    line = exp_run_command(VALUES, HELD)
    assert line.startswith("dvc exp run -S trainer.lr=0.0003 -S 'trainer.precision=\"bf16-mixed\"' ")
    words = shlex.split(line)  # what the shell hands DVC
    assert words[:3] == ["dvc", "exp", "run"] and words[3::2] == ["-S"] * len(VALUES)
    assert words[4::2] == [
        "trainer.lr=0.0003",
        'trainer.precision="bf16-mixed"',
        'finetune.strategies=["lora", "full"]',  # held, though null
        "+finetune.trainer.lr=1e-05",  # its parent held, empty
        "+finetune.lora.r=8",  # its parent missing too
        r'+finetune.note="say \"\${x}\" a\b"',  # Hydra's escapes: a quote, an interpolation; a lone \ stays
        '+finetune.tag="null"',  # text, not null
        "+model.channels=[8, 16]",
    ]


def test_dvc_runs_the_printed_exp_run_line_with_the_values_set(tmp_path):
    """The line as a user pastes it, in a shell, in a git + DVC repo whose one stage copies params.yaml."""
    env = dict(
        os.environ,
        PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}",
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(HELD | {"model": {}}))
    stage = {"cmd": "cp params.yaml copied.yaml", "params": ["trainer", "finetune", "model"], "outs": ["copied.yaml"]}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"copy": stage}}))
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "x"]):
        subprocess.run(command, cwd=tmp_path, env=env, check=True, capture_output=True, timeout=60)
    line = exp_run_command(VALUES, read_yaml(tmp_path / "params.yaml"))
    done = subprocess.run(line, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Running stage 'copy'" in done.stdout
    read = YAML(typ="safe").load  # YAML 1.2, as DVC writes it (1e-05 a float, which PyYAML's 1.1 reads as text)
    copied = read(tmp_path / "copied.yaml")
    assert read(tmp_path / "params.yaml") == copied
    for key, value in VALUES.items():
        section, *rest = key.split(".")
        node = copied[section]
        for part in rest:
            node = node[part]
        assert node == value, key


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


def bad_storages(tmp_path) -> list[tuple[str, str]]:
    """(--storage value, the error it gives) for each kind of mistake."""
    (tmp_path / "a-file").write_text("")
    cases = [
        (
            "bogus://x",
            r"--storage 'bogus://x': not an Optuna storage; use an RDB URL \(sqlite:///optuna.db, "
            r"postgresql://\.\.\., mysql://\.\.\.\) or journal:PATH",
        ),
        ("sqlite:/optuna.db", r"--storage 'sqlite:/optuna.db': not an Optuna storage; use an RDB URL"),
        (f"journal:{tmp_path}/a-file/study.log", r"/a-file is a file, not a folder; choose a journal file path in"),
        (f"journal:{tmp_path}/missing/study.log", r"folder \S+/missing does not exist; create it \(mkdir -p "),
        (f"sqlite:///{tmp_path}/missing/optuna.db", r"folder \S+/missing does not exist; create it"),
        (f"journal:{tmp_path}", r"is a folder; give the path of a journal file in it"),
    ]
    if importlib.util.find_spec("MySQLdb") is None:  # MySQL's default driver: not a dependency (psycopg is, for tests)
        cases.append(
            (
                "mysql://sweeper:secret@localhost/optuna",
                r"--storage 'mysql://sweeper:\*\*\*@localhost/optuna': its database driver MySQLdb is not "
                r"installed; install it \(pip install 'mysqlclient'\)",
            )
        )
    return cases


def test_a_bad_storage_is_one_line_and_exit_2_before_any_work(inside, monkeypatch, capsys):
    root, _, tmp_path = inside
    for url, message in bad_storages(tmp_path):
        monkeypatch.setattr(sys, "argv", ["pipeline.sweep", "scratch", "--n-trials", "2", "--storage", url])
        with pytest.raises(SystemExit) as exit:
            sweep_main()
        out, err = capsys.readouterr()
        assert exit.value.code == 2 and not out and err.count("\n") == 1, err
        assert re.match(r"error: .*" + message, err), err
        assert "secret" not in err  # a password in the URL is not shown
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # no MLflow store, no study, no folder
    assert not (root / "optuna.db").exists()


def test_a_bad_storage_from_the_command_line_is_one_line_and_exit_2(workspace, tmp_path):
    root, _ = workspace
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    command = sweep_command("--n-trials", "2", "--storage", "bogus://x")
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and not done.stdout and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: --storage 'bogus://x': not an Optuna storage; use an RDB URL")
    assert not any(tmp_path.iterdir())  # no MLflow store: nothing ran


@pytest.mark.parametrize("storage", ["journal", "sqlite"])
def test_a_worker_with_no_trial_left_waits_for_a_dead_workers_trial_and_takes_its_retry(tmp_path, storage):
    """A worker that looks within the grace of a dead worker's last heartbeat leaves its trial; one that waits takes
    its retry once it is stale. Whether the look comes within the grace is the machine's (a stalled one may look
    later): the test times the look and holds it to the rule that applies, so load cannot fail it.

    Catches: a worker failing a running trial before the grace is up."""
    url = f"journal:{tmp_path / 'study.log'}" if storage == "journal" else f"sqlite:///{tmp_path / 'study.db'}"
    study = open_study("dead", storage_for(url, heartbeat_s=1), "minimize", 1, seed=0)
    grace_s = GRACE_HEARTBEATS * 1
    taken = next_trial(study)
    with heartbeat(study, taken):  # its worker alive: another one waits, bounded, and leaves it running
        started = time.monotonic()
        assert next_trial(study, wait_s=5) is None and time.monotonic() - started >= 5
        assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.RUNNING]
        last_beat = time.time()  # the storage's clock (wall time): the worker's last heartbeat is at or after it
        study._storage.record_heartbeat(taken._trial_id)
    # its heartbeat stops (the worker died)
    look = next_trial(study)
    if time.time() - last_beat <= grace_s:  # the whole look came within the grace: the trial was not stale
        assert look is None, "a trial was failed as stale within the grace of its last heartbeat"
    retry = look if look is not None else next_trial(study, wait_s=60)  # a waiting worker fails it once it is stale
    assert retry is not None and retry_of(study, retry) == taken.number
    assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.RUNNING]


@pytest.mark.parametrize("study_storage", ["sqlite", "postgresql"], indirect=True)
def test_a_worker_killed_mid_trial_has_its_trial_retried_by_the_other_worker(workspace, tmp_path, study_storage):
    root, _ = workspace
    url = study_storage
    command = sweep_command("--n-trials", "2", "--study", "killed", "--storage", url, "--heartbeat", "1")
    env, lines = worker_env(tmp_path), queue.Queue()
    workers = [Worker(command, root, env, lines) for _ in range(2)]
    try:
        killed = first_to_print(
            workers, lines, "epoch 1/", timeout_s=180
        )  # mid-trial: the first epoch of its first trial
        os.kill(killed.process.pid, signal.SIGKILL)
        (survivor,) = [w for w in workers if w is not killed]
        survivor.process.wait(timeout=300)  # it finishes its trial, waits for the killed one to go stale, retries it
        survivor.reader.join(timeout=10)
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.kill()
    assert survivor.process.returncode == 0, "".join(survivor.log)[-3000:]
    assert "this worker ran 2 trials" in survivor.process.stdout.read()
    assert re.search(r"trial 3 \(retry of trial [12], whose worker died\) complete", "".join(survivor.log))
    trials = optuna.load_study(study_name="killed", storage=storage_for(url)).get_trials()
    states = optuna.trial.TrialState
    (stale,) = [t for t in trials if t.state == states.FAIL]
    assert len([t for t in trials if t.state in (states.COMPLETE, states.PRUNED)]) == 2 and len(trials) == 3
    assert trials[2].system_attrs["failed_trial"] == stale.number and trials[2].params == stale.params  # its retry
